"""A picture comparing two recordings: log-mel spectrograms, input above reconstruction, as PNG.

Written with zlib alone (no plotting library in the runtime)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .atomic import publish, temp_beside
from .metrics import _log_mel

_N_FFT = 2048
# A dark-to-bright ramp (black, purple, orange, pale yellow), interpolated per pixel.
_RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], np.float64)


def _colour(v: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> [H, W, 3] uint8."""
    pos = v * (len(_RAMP) - 1)
    i = np.clip(pos.astype(int), 0, len(_RAMP) - 2)
    f = (pos - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.uint8)


def _png(rgb: np.ndarray) -> bytes:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def save_comparison(path: str | Path, reference: np.ndarray, reconstruction: np.ndarray, sample_rate: int,
                    width: int = 1200) -> None:
    """Write a PNG: the reference's log-mel spectrogram (top) over the reconstruction's (bottom),
    low frequencies at the bottom of each, one colour scale for both. Inputs ``[C, T]`` float32."""
    mels = [_log_mel(x.mean(axis=0, keepdims=True), _N_FFT, sample_rate)[0].T[::-1] for x in (reference, reconstruction)]
    top = max(m.max() for m in mels)
    panels = []
    for m in mels:
        v = np.clip((m - (top - 5.0)) / 5.0, 0, 1)  # 5 decades (100 dB) of range
        cols = np.linspace(0, v.shape[1] - 1, width).astype(int)
        v = np.repeat(v[:, cols], 3, axis=0)  # 64 bands -> 192 rows
        panels.append(_colour(v))
    gap = np.full((6, width, 3), 255, np.uint8)
    path = Path(path)
    tmp = temp_beside(path)
    Path(tmp).write_bytes(_png(np.concatenate([panels[0], gap, panels[1]])))
    publish(tmp, path)
