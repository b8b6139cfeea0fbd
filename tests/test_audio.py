"""Audio files in and out: resampling keeps what is heard (frequency and level), non-finite audio is
refused with an AudioFileError, and file extensions are matched in any case."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from same_edge.audio import AudioReader, AudioWriter
from same_edge.errors import AudioFileError
from same_edge.latents import LatentFile, LatentHeader, LatentReader

TONE_HZ, AMPLITUDE, SECONDS = 1000.0, 0.5, 2.0


def _tone(rate: int, seconds: float = SECONDS) -> np.ndarray:
    """A 1 kHz sine at half full scale, [n, 2] float64 (soundfile's layout)."""
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat(AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)[:, None], 2, axis=1)


def _peak_hz_and_level_db(x: np.ndarray, rate: int) -> tuple[float, float, float]:
    """FFT peak frequency (Hz), its bin width (Hz) and RMS level (dBFS) of one channel, away from the
    resampler's start-up and tail (0.1 s each end)."""
    edge = int(0.1 * rate)
    steady = x[edge:-edge]
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    bin_hz = rate / len(steady)
    return float(np.argmax(spectrum) * bin_hz), bin_hz, float(20 * np.log10(np.sqrt(np.mean(steady**2))))


REFERENCE_DB = 20 * np.log10(AMPLITUDE / np.sqrt(2))  # RMS of the tone: -9.03 dBFS


def test_a_1_khz_tone_at_48_khz_read_at_44_1_khz_keeps_its_frequency_and_level(tmp_path):
    sf.write(tmp_path / "tone.wav", _tone(48000), 48000, subtype="FLOAT")
    reader = AudioReader(tmp_path / "tone.wav", 44100)
    audio = reader.read_all()
    assert reader.input_rate == 48000 and audio.dtype == np.float32 and audio.shape[0] == 2
    assert abs(audio.shape[1] - SECONDS * 44100) <= 1  # the streaming resampler is flushed at the end
    for channel in audio:
        hz, bin_hz, level = _peak_hz_and_level_db(channel, 44100)
        assert abs(hz - TONE_HZ) <= bin_hz, f"peak at {hz:.1f} Hz"
        assert level == pytest.approx(REFERENCE_DB, abs=0.1)


def test_a_tone_resampled_to_44_1_khz_and_written_back_at_48_khz_keeps_its_frequency_and_level(tmp_path):
    sf.write(tmp_path / "tone.wav", _tone(48000), 48000, subtype="FLOAT")
    audio = AudioReader(tmp_path / "tone.wav", 44100).read_all()
    with AudioWriter(tmp_path / "back.wav", 44100, 2, output_rate=48000) as w:
        for start in range(0, audio.shape[1], 4096):  # in blocks, as decoding writes
            w.write(audio[:, start : start + 4096])
    back, rate = sf.read(str(tmp_path / "back.wav"), dtype="float32")
    assert rate == 48000 and abs(back.shape[0] - SECONDS * 48000) <= 2
    for channel in back.T:
        hz, bin_hz, level = _peak_hz_and_level_db(channel, 48000)
        assert abs(hz - TONE_HZ) <= bin_hz, f"peak at {hz:.1f} Hz"
        assert level == pytest.approx(REFERENCE_DB, abs=0.1)


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio_given_to_the_writer_is_an_audio_file_error_and_leaves_no_file(tmp_path, suffix, bad):
    audio = _tone(44100, 0.1).T.astype(np.float32)
    audio[1, 100] = bad
    with pytest.raises(AudioFileError, match="NaN or Inf"), AudioWriter(tmp_path / f"out{suffix}", 44100, 2) as w:
        w.write(audio)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,container", [("OUT.WAV", "WAV"), ("out.Wav", "WAV"), ("OUT.FLAC", "FLAC"),
                                            ("out.fLaC", "FLAC")])
def test_audio_extensions_are_matched_in_any_case(tmp_path, name, container):
    audio = _tone(44100, 0.1).T.astype(np.float32)
    with AudioWriter(tmp_path / name, 44100, 2) as w:
        w.write(audio)
    assert sf.info(str(tmp_path / name)).format == container
    back = AudioReader(tmp_path / name, 44100).read_all()
    assert np.allclose(back, audio, atol=1e-6 if container == "WAV" else 2**-22)


def test_an_unknown_audio_extension_is_refused_in_any_case(tmp_path):
    for name in ("out.mp3", "OUT.MP3", "out"):
        with pytest.raises(AudioFileError, match="use a .wav or .flac output"):
            AudioWriter(tmp_path / name, 44100, 2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["z.NPZ", "z.Npz"])
def test_latent_file_extensions_are_matched_in_any_case(tmp_path, name):
    z = np.ones((4, 3), np.float32)
    LatentFile(z, LatentHeader(44100, 10000, "cfg-ckpt", 44100)).save(tmp_path / name)
    with LatentReader(tmp_path / name) as r:
        assert r.shape == (4, 3)


def test_more_channels_than_the_model_has_are_refused_unless_downmixed(tmp_path):
    sf.write(tmp_path / "six.wav", np.full((4410, 6), 0.25, np.float32), 44100)
    with pytest.raises(AudioFileError, match="6 channels"):
        AudioReader(tmp_path / "six.wav", 44100, channels=2)
    reader = AudioReader(tmp_path / "six.wav", 44100, channels=2, downmix=True)
    block = reader.read_all()
    assert block.shape == (2, 4410) and np.allclose(block, 0.25)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_failed_write_keeps_an_existing_output_intact_and_leaves_no_temporary_file(tmp_path, suffix):
    target = tmp_path / f"out{suffix}"
    target.write_bytes(b"an earlier, finished output")
    with pytest.raises(RuntimeError), AudioWriter(target, 44100, 2) as w:
        w.write(np.zeros((2, 44100), np.float32))
        raise RuntimeError("the encoder failed half way")
    assert target.read_bytes() == b"an earlier, finished output"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
