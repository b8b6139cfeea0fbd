"""Quality metrics: the mel distance and where in the spectrum it lies."""

import numpy as np
import pytest

from same_edge.metrics import QualityMeter, mel_distance

SR = 44100


def _noise(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).normal(size=(2, int(seconds * SR)))).astype(np.float32)


def test_mel_band_errors_average_to_the_mel_distance():
    ref, test = _noise(2.0, 0), _noise(2.0, 1)
    meter = QualityMeter(SR)
    meter.update(ref, test)
    bands = meter.mel_bands(8)
    assert len(bands["abs"]) == len(bands["signed"]) == 8
    assert np.mean(bands["abs"]) == pytest.approx(meter.result().mel_distance, rel=1e-9)
    assert meter.result().mel_distance == pytest.approx(mel_distance(ref, test, SR), rel=1e-9)


def test_a_quieter_treble_shows_as_a_negative_signed_error_in_the_top_bands_only():
    ref = _noise(2.0, 0)
    spec = np.fft.rfft(ref, axis=1)
    spec[:, np.fft.rfftfreq(ref.shape[1], 1 / SR) > 12000] *= 0.1  # treble 20 dB down
    dull = np.fft.irfft(spec, n=ref.shape[1], axis=1).astype(np.float32)
    meter = QualityMeter(SR)
    meter.update(ref, dull)
    signed = meter.mel_bands(8)["signed"]
    assert signed[-1] < -0.5 and abs(signed[0]) < 0.05
