"""Reconstruction quality: SNR, SI-SDR and multi-resolution mel distance, accumulated block by block."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

MEL_RESOLUTIONS = (512, 1024, 2048)  # STFT sizes; hop a quarter of each
MEL_BANDS = 64


@lru_cache(maxsize=8)
def _mel_filters(n_fft: int, sample_rate: int, bands: int = MEL_BANDS) -> np.ndarray:
    """Triangular HTK-mel filterbank, [bands, n_fft // 2 + 1]."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(0, hz_to_mel(np.array(sample_rate / 2)), bands + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None] - lower) / (centre - lower)
    fall = (upper - freqs[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rise, fall))


def _log_mel(x: np.ndarray, n_fft: int, sample_rate: int) -> np.ndarray:
    """[C, T] -> [C, frames, bands] log10 mel magnitudes."""
    hop = n_fft // 4
    if x.shape[1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[1])))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=1)[:, ::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1))
    return np.log10(spec @ _mel_filters(n_fft, sample_rate).T + 1e-5)


def _band_errors(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean |error| and mean signed error (test minus ref) of log10 mel magnitudes, [MEL_BANDS] each,
    averaged over ``MEL_RESOLUTIONS``."""
    diffs = [(_log_mel(test, n, sample_rate) - _log_mel(ref, n, sample_rate)).reshape(-1, MEL_BANDS)
             for n in MEL_RESOLUTIONS]
    return np.mean([np.abs(d).mean(axis=0) for d in diffs], axis=0), np.mean([d.mean(axis=0) for d in diffs], axis=0)


def mel_distance(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """Mean L1 distance of log10 mel spectrograms over ``MEL_RESOLUTIONS`` (0 = identical)."""
    return float(_band_errors(ref, test, sample_rate)[0].mean())


def _snr(ref2: float, err2: float) -> float:
    return float("inf") if err2 == 0 else float(10 * np.log10(ref2 / err2))


def _si_sdr(ref2: float, cross: float, test2: float) -> float:
    alpha = cross / ref2  # the optimal scale of the reference
    target2 = alpha * alpha * ref2
    residual2 = test2 - 2 * alpha * cross + target2
    if residual2 <= 0:
        return float("inf")
    return float(10 * np.log10(target2 / residual2)) if target2 > 0 else float("-inf")


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-noise ratio of ``test`` against ``ref`` in dB (inf when identical); any shapes that match."""
    r, t = ref.astype(np.float64), test.astype(np.float64)
    return _snr(float(np.sum(r * r)), float(np.sum((r - t) ** 2)))


def si_sdr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB: SNR after scaling ``ref`` optimally onto ``test``."""
    r, t = ref.astype(np.float64).ravel(), test.astype(np.float64).ravel()
    return _si_sdr(float(r @ r), float(r @ t), float(t @ t))


@dataclass(frozen=True)
class Quality:
    """Reconstruction quality; the ratios are None for a silent reference."""

    snr_db: float | None
    si_sdr_db: float | None
    mel_distance: float | None  # mean L1 of log10 mel magnitudes (0 = identical); None for no samples

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


class QualityMeter:
    """Accumulates SNR, SI-SDR (over all samples) and mel distance (length-weighted over blocks)
    of a reconstruction against its reference, fed as aligned ``[C, n]`` blocks."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._ref2 = self._err2 = self._cross = self._test2 = 0.0
        self._mel_sum = 0.0
        self._band_abs = self._band_signed = np.zeros(MEL_BANDS)
        self.samples = 0

    def update(self, ref: np.ndarray, test: np.ndarray) -> None:
        if ref.shape[1] == 0:
            return
        r, t = ref.astype(np.float64), test.astype(np.float64)
        self._ref2 += float(np.sum(r * r))
        self._err2 += float(np.sum((r - t) ** 2))
        self._cross += float(np.sum(r * t))
        self._test2 += float(np.sum(t * t))
        band_abs, band_signed = _band_errors(ref, test, self.sample_rate)
        self._mel_sum += float(band_abs.mean()) * ref.shape[1]
        self._band_abs = self._band_abs + band_abs * ref.shape[1]
        self._band_signed = self._band_signed + band_signed * ref.shape[1]
        self.samples += ref.shape[1]

    def result(self) -> Quality:
        """SNR, SI-SDR and mel distance over everything fed so far."""
        silent = self.samples == 0 or self._ref2 == 0.0
        return Quality(None if silent else _snr(self._ref2, self._err2),
                       None if silent else _si_sdr(self._ref2, self._cross, self._test2),
                       self._mel_sum / self.samples if self.samples else None)

    def mel_bands(self, groups: int = 8) -> dict[str, list[float]]:
        """Where the mel distance lies: mean |error| and mean signed error (test minus ref, log10) per
        group of adjacent mel bands, lowest first; the mean of ``abs`` is the mel distance."""
        n = max(self.samples, 1)
        return {"abs": [float(v) for v in (self._band_abs / n).reshape(groups, -1).mean(axis=1)],
                "signed": [float(v) for v in (self._band_signed / n).reshape(groups, -1).mean(axis=1)]}
