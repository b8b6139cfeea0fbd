"""Latent files (``.npz``): the latents with what decoding needs to give back the exact input."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import publish, temp_beside


class LatentFileError(ValueError):
    """A latent file is unreadable or does not belong to this model."""


@dataclass(frozen=True)
class LatentFile:
    latents: np.ndarray  # [latent_dim, L] float32
    sample_rate: int  # Hz of the audio the latents were encoded from (the model's rate)
    length: int  # samples of that audio, so that decoding trims to the exact input length
    model_id: str  # Manifest.model_id of the model that encoded them
    source_rate: int  # Hz of the original file, for decoding back at that rate (--keep-rate)


def save_latents(path: str | Path, lf: LatentFile) -> None:
    """Write a latent file atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise LatentFileError(f"latent files are .npz, got {path.name}")
    tmp = temp_beside(path)
    try:
        np.savez(tmp, latents=lf.latents.astype(np.float32), sample_rate=np.int64(lf.sample_rate),
                 length=np.int64(lf.length), model_id=np.str_(lf.model_id), source_rate=np.int64(lf.source_rate))
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_latents(path: str | Path) -> LatentFile:
    path = Path(path)
    if not path.is_file():
        raise LatentFileError(f"latent file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            lf = LatentFile(latents=f["latents"], sample_rate=int(f["sample_rate"]), length=int(f["length"]),
                            model_id=str(f["model_id"]), source_rate=int(f["source_rate"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise LatentFileError(f"{path} is not a same-edge latent file ({e})") from None
    if lf.latents.ndim != 2 or lf.latents.dtype != np.float32 or not np.isfinite(lf.latents).all():
        raise LatentFileError(f"{path} holds malformed latents")
    if lf.length < 1 or lf.sample_rate <= 0 or lf.source_rate <= 0:
        raise LatentFileError(f"{path} has an inconsistent header")
    return lf
