"""same-edge export: the PyTorch SAME model, official checkpoint loading, LiteRT conversion and
quantisation. Needs the ``export`` extra (torch, litert-torch, ai-edge-quantizer)."""

from .checkpoint import CheckpointError, load_model
from .config import ConfigError, SameConfig, UnsupportedConfigError, load_config
from .errors import ExportError, GraphCheckError
from .model import SameAutoencoder

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ExportError",
    "GraphCheckError",
    "SameAutoencoder",
    "SameConfig",
    "UnsupportedConfigError",
    "load_config",
    "load_model",
]
