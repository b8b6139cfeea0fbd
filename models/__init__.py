"""Model assets shipped with same-edge (installed as ``same_edge.models``): the bundled demo model
and the released SAME-S and SAME-L configurations."""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo"
SAME_S_CONFIG = Path(__file__).resolve().parent / "same-s" / "model_config.json"
SAME_L_CONFIG = Path(__file__).resolve().parent / "same-l" / "model_config.json"
DEMO_CLIP_NAME = "clip.flac"


def demo_clip(model_dir: str | Path | None = None) -> Path | None:
    """The demo clip: ``clip.flac`` in ``model_dir`` if it has one, else the bundled model's; None
    where neither exists."""
    candidates = ([Path(model_dir) / DEMO_CLIP_NAME] if model_dir is not None else []) + [DEMO_MODEL_DIR / DEMO_CLIP_NAME]
    return next((p for p in candidates if p.is_file()), None)
