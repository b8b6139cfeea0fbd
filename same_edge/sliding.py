"""The host's half of SAME-L's streaming: the key bias each sliding-window graph call takes.

A SAME-L window graph runs every block as far as its input allows: block i's input holds the
frames from ``position - i*w - 2w`` on (its 2w carried frames, then the window's), and its keys
must not see frames before the stream's start or past its end, as the official band is clipped
at both ends. The graph cannot know where the stream starts or ends, so the host says it per
frame: 0 for a frame of the stream, ``MASKED`` for one outside it. The end is known only at the
flush, whose windows of padding carry it. libsame_edge computes the same (same_edge.c,
``key_bias``); ``same_edge_export.model.stream_key_bias`` is the PyTorch original.
"""

from __future__ import annotations

import numpy as np

MASKED = np.float32(-1e9)  # a key no query sees: its softmax weight underflows to exactly 0


def stream_key_bias(depth: int, window_frames: int, position: int, frames: int, total: int | None) -> np.ndarray:
    """Key bias ``[depth, frames + 2w]`` float32 of a window of ``frames`` frames pushed after
    ``position`` frames; ``total``: the stream's length in frames once known (None before the
    flush). Block i's column j stands for stream frame ``position - i*w - 2w + j``."""
    w = window_frames
    frame = position - 2 * w - w * np.arange(depth)[:, None] + np.arange(frames + 2 * w)[None, :]
    real = (frame >= 0) if total is None else (frame >= 0) & (frame < total)
    return np.where(real, np.float32(0.0), MASKED).astype(np.float32)
