"""Model assets shipped with same-edge (installed as ``same_edge.models``): the bundled demo model
and the released SAME-S configuration."""

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo"
SAME_S_CONFIG = Path(__file__).resolve().parent / "same-s" / "model_config.json"
