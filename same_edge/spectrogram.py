"""A picture comparing two recordings: spectrograms of the input above the reconstruction.

Drawn with matplotlib (the ``plot`` extra: ``pip install 'same-edge[plot]'``), which the runtime
does not need otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_output

PLOT_HINT = "pip install 'same-edge[plot]' for the spectrogram picture"
_N_FFT = 2048
_HOP = 512
_RANGE_DB = 90.0


def plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _spectrogram_db(x: np.ndarray) -> np.ndarray:
    """[C, T] -> [frequencies, frames] power in dB of the channel mean (Hann window)."""
    mono = x.mean(axis=0)
    if mono.shape[0] < _N_FFT:
        mono = np.pad(mono, (0, _N_FFT - mono.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(mono, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(_N_FFT), axis=-1)) ** 2
    return (10 * np.log10(power + 1e-12)).T


def save_comparison(path: str | Path, reference: np.ndarray, reconstruction: np.ndarray, sample_rate: int,
                    titles: tuple[str, str] = ("input", "reconstruction")) -> None:
    """Write a PNG: the spectrogram of ``reference`` (top) over that of ``reconstruction`` (bottom),
    time in seconds, frequency in kHz, one dB colour scale for both. Inputs ``[C, T]`` float32 at
    ``sample_rate`` Hz. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [_spectrogram_db(x) for x in (reference, reconstruction)]
    top = max(float(s.max()) for s in specs)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, constrained_layout=True)
    image = None
    for ax, spec, title, x in zip(axes, specs, titles, (reference, reconstruction), strict=True):
        extent = (0.0, x.shape[1] / sample_rate, 0.0, sample_rate / 2000)
        image = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, cmap="magma",
                          vmin=top - _RANGE_DB, vmax=top)
        ax.set_title(title)
        ax.set_ylabel("frequency (kHz)")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes, label="power (dB)")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
