"""Seeded random SAME weights in the official checkpoint layout, for any configuration.

Speed does not depend on weight values, and a parity test is only blind where a weight is
zero, so every tensor is random (the official init zeroes residual branches).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import official_state_dict
from .config import load_config
from .model import SameAutoencoder


def seeded_model(config_path: str | Path, seed: int) -> SameAutoencoder:
    """A model of the given config with every parameter drawn from a seeded generator."""
    model = SameAutoencoder(load_config(config_path))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if name.endswith("running_std"):
                p.fill_(1.5)
            elif leaf == "alpha":
                p.uniform_(0.5, 2.0, generator=gen)
            elif leaf in ("gamma", "scale"):
                p.normal_(1.0, 0.2, generator=gen)
            elif p.ndim == 2:
                p.normal_(0.0, p.shape[1] ** -0.5, generator=gen)
            elif name.endswith("output_token"):
                p.normal_(0.0, 0.2, generator=gen)
            else:
                p.normal_(0.0, 0.05, generator=gen)
        # Audio patches are small: scale the input projection up so the encoder sees O(1) activations.
        model.encoder.input_proj.weight.mul_(8.0)
    return model.eval()


def write_seeded_checkpoint(config_path: str | Path, out_path: str | Path, seed: int = 0) -> Path:
    """Write ``seeded_model``'s weights as an official-layout ``model.safetensors``."""
    from safetensors.torch import save_file

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(official_state_dict(seeded_model(config_path, seed)), str(out_path))
    return out_path
