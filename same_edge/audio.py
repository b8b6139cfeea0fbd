"""Audio files in and out: any rate and layout soundfile reads, to the model's [C, T] float32."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


class AudioFileError(ValueError):
    """An audio file cannot be read or is unusable."""


def read_audio(path: str | Path, sample_rate: int, channels: int = 2, downmix: bool = False) -> tuple[np.ndarray, int]:
    """Read an audio file as ``[channels, T]`` float32 at ``sample_rate`` Hz.

    Integer formats are scaled to [-1, 1) by soundfile; other rates are resampled with soxr
    (VHQ); mono is duplicated to every channel; more channels than the model has are refused
    unless ``downmix``. Returns the audio and the file's original sample rate.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"input file not found: {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioFileError(f"cannot read {path}: {e}") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path} holds no samples")
    if not np.isfinite(data).all():
        raise AudioFileError(f"{path} contains NaN or Inf samples")
    n_in = data.shape[1]
    if n_in == 1:
        data = np.repeat(data, channels, axis=1)
    elif n_in != channels:
        if not downmix:
            raise AudioFileError(f"{path} has {n_in} channels; the model takes {channels} (pass --downmix to mix down)")
        data = np.repeat(data.mean(axis=1, keepdims=True), channels, axis=1)
    if rate != sample_rate:
        import soxr

        data = soxr.resample(data, rate, sample_rate, quality="VHQ").astype(np.float32)
    return np.ascontiguousarray(data.T), rate


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> int:
    """Write ``[C, T]`` float32 audio atomically (temporary file, then rename).

    WAV is written as 32-bit float, FLAC as 24-bit. Returns how many samples lie beyond +-1
    (kept as they are in float WAV, clipped in FLAC: never wrapped).
    """
    path = Path(path)
    fmt = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}.get(path.suffix.lower())
    if fmt is None:
        raise AudioFileError(f"cannot write {path.suffix or 'files without an extension'}: use .wav or .flac")
    over = int(np.count_nonzero(np.abs(audio) > 1.0))
    data = audio.T if fmt[0] == "WAV" else np.clip(audio.T, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, data, sample_rate, format=fmt[0], subtype=fmt[1])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return over
