"""Quality metrics: the mel distance and where in the spectrum it lies."""

import numpy as np
import pytest

from same_edge.metrics import QualityMeter, mel_distance, si_sdr_db, snr_db

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


# -- closed forms -----------------------------------------------------------------------------------


def _tone_and_quadrature(seconds: float = 1.0, hz: float = 441.0) -> tuple[np.ndarray, np.ndarray]:
    """A stereo sine and its cosine (orthogonal to it: a whole number of periods), [2, T] float64."""
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([np.sin(2 * np.pi * hz * t)] * 2), np.stack([np.cos(2 * np.pi * hz * t)] * 2)


def test_half_amplitude_is_6_02_db_snr_and_an_unbounded_si_sdr():
    x = _noise(1.0, 0)
    assert snr_db(x, 0.5 * x) == pytest.approx(20 * np.log10(2), abs=1e-9)  # 6.0206 dB
    assert si_sdr_db(x, 0.5 * x) == float("inf")  # a scaled copy has no distortion
    assert si_sdr_db(x, -2.0 * x) == float("inf")
    assert snr_db(x, x) == float("inf")
    assert snr_db(x, np.zeros_like(x)) == pytest.approx(0.0, abs=1e-12)  # the error is the whole signal


def test_an_orthogonal_error_at_a_tenth_of_the_amplitude_is_20_db_and_si_sdr_ignores_the_gain():
    x, y = _tone_and_quadrature()
    test = x + 0.1 * y  # error power a hundredth of the signal's, orthogonal to it
    assert snr_db(x, test) == pytest.approx(20.0, abs=1e-6)
    assert si_sdr_db(x, test) == pytest.approx(20.0, abs=1e-6)
    assert si_sdr_db(x, 3.0 * test) == pytest.approx(20.0, abs=1e-6)  # scale-invariant
    assert snr_db(x, 3.0 * test) < 0  # SNR is not


def test_quality_meter_fed_in_blocks_gives_the_one_shot_ratios_and_the_length_weighted_mel_distance():
    ref, test = _noise(2.0, 0), _noise(2.0, 0) * 0.8 + _noise(2.0, 1) * 0.3
    cuts = [0, 1, 4096, 30000, 30001, 61000, ref.shape[1]]  # uneven blocks, one of a single sample
    meter = QualityMeter(SR)
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        meter.update(ref[:, a:b], test[:, a:b])
    got = meter.result()
    assert meter.samples == ref.shape[1]
    assert got.snr_db == pytest.approx(snr_db(ref, test), rel=1e-9)
    assert got.si_sdr_db == pytest.approx(si_sdr_db(ref, test), rel=1e-9)
    weighted = sum(mel_distance(ref[:, a:b], test[:, a:b], SR) * (b - a) for a, b in zip(cuts[:-1], cuts[1:], strict=True))
    assert got.mel_distance == pytest.approx(weighted / ref.shape[1], rel=1e-9)


def test_a_silent_reference_gives_no_ratios_and_no_samples_give_no_quality_at_all():
    meter = QualityMeter(SR)
    assert meter.result().snr_db is meter.result().si_sdr_db is meter.result().mel_distance is None
    meter.update(np.zeros((2, SR), np.float32), _noise(1.0, 0))
    q = meter.result()
    assert q.snr_db is None and q.si_sdr_db is None  # no signal to compare against
    assert q.mel_distance is not None and q.mel_distance > 0
    meter.update(np.zeros((2, 0), np.float32), np.zeros((2, 0), np.float32))  # an empty block changes nothing
    assert meter.result() == q
