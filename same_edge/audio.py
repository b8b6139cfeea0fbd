"""Audio files in and out, block by block: any rate and layout soundfile reads, to the model's
``[C, n]`` float32 at its sample rate, and back. Memory stays flat however long the file is."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .atomic import AtomicPath
from .errors import AudioFileError

BLOCK_SECONDS = 4.0  # file-to-file block length: big enough for the largest window, small in memory
# Output formats by extension (any case): libsndfile container and sample format.
OUTPUT_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}
FLAC_RATES = range(1, 655351)  # FLAC's STREAMINFO holds the rate in 20 bits
# Input rates read, Hz: a damaged header claims any rate, and 2000 frames "at 1 Hz" resample to 88 M samples.
INPUT_RATES = range(1000, 1_000_001)


def soundfile_name(path: str | Path) -> str | bytes:
    """``path`` as soundfile must be given it: bytes on POSIX, where a file name is any bytes and
    soundfile would encode a ``str`` strictly (a Latin-1 name, decoded by Python with surrogate
    escapes, is a UnicodeEncodeError there); the ``str`` on Windows."""
    return str(path) if os.name == "nt" else os.fsencode(path)


class AudioReader:
    """Reads a file as ``[channels, n]`` float32 blocks at ``sample_rate`` Hz.

    Integer formats are scaled to [-1, 1) by libsndfile; other rates are resampled with soxr's
    streaming resampler (VHQ); mono is duplicated to every channel; more channels than the model
    has are refused unless ``downmix`` (mean of all channels).
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int = 2, downmix: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise AudioFileError(f"input file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise AudioFileError(f"input file is empty: {self.path}")
        try:
            self._file = sf.SoundFile(soundfile_name(self.path))
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise AudioFileError(f"cannot read {self.path}: {e}") from None
        # libsndfile quietly shortens a cut-off WAV to what is there; its header log tells.
        if re.search(r"^data\s*:\s*\d+ \(should be", self._file.extra_info, re.MULTILINE):
            self._file.close()
            raise AudioFileError(f"{self.path} is truncated: its header promises more audio than the file holds")
        self.input_rate = self._file.samplerate
        if self.input_rate not in INPUT_RATES:
            self._file.close()
            raise AudioFileError(f"{self.path} claims {self.input_rate} Hz, outside [{INPUT_RATES.start}, "
                                 f"{INPUT_RATES.stop - 1}] Hz: a damaged header, or not music")
        self.input_channels = self._file.channels
        self.frames = self._file.frames  # at the input rate
        if self.frames <= 0:
            raise AudioFileError(f"{self.path} holds no samples")
        if self.input_channels > channels and not downmix:
            raise AudioFileError(f"{self.path} has {self.input_channels} channels; the model takes {channels} "
                                 "(pass --downmix to mix down)")
        self.sample_rate, self.channels = sample_rate, channels
        try:
            self._resampler = (None if self.input_rate == sample_rate else
                               soxr.ResampleStream(self.input_rate, sample_rate, channels, dtype="float32", quality="VHQ"))
        except (ValueError, RuntimeError) as e:
            self._file.close()
            raise AudioFileError(f"cannot resample {self.path} from {self.input_rate} Hz: {e}") from None

    @property
    def seconds(self) -> float:
        return self.frames / self.input_rate

    def _map_channels(self, block: np.ndarray) -> np.ndarray:
        if block.shape[1] == self.channels:
            return block
        if block.shape[1] == 1:
            return np.repeat(block, self.channels, axis=1)
        return np.repeat(block.mean(axis=1, keepdims=True), self.channels, axis=1)

    def blocks(self, seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
        """Yield ``[channels, n]`` float32 blocks at ``sample_rate``; the last one flushes the resampler."""
        size = max(1, int(seconds * self.input_rate))
        done = 0
        try:
            with self._file:
                while True:
                    block = self._file.read(size, dtype="float32", always_2d=True)
                    done += block.shape[0]
                    last = block.shape[0] < size or done >= self.frames
                    if last and done < self.frames:
                        raise AudioFileError(f"{self.path} is truncated: {done} of {self.frames} frames readable")
                    if not np.isfinite(block).all():
                        raise AudioFileError(f"{self.path} contains NaN or Inf samples")
                    block = self._map_channels(block)
                    if self._resampler is not None:
                        block = self._resampler.resample_chunk(block, last=last)
                    if block.shape[0]:
                        yield np.ascontiguousarray(block.T, dtype=np.float32)
                    if last:
                        return
        except sf.LibsndfileError as e:
            raise AudioFileError(f"cannot read {self.path}: {e}") from None

    def read_all(self) -> np.ndarray:
        """The whole file as ``[channels, T]`` (for short files; long ones go through ``blocks``)."""
        blocks = list(self.blocks())
        if not blocks:  # a few samples at a high rate can resample to none
            raise AudioFileError(f"{self.path} holds no samples at {self.sample_rate} Hz")
        return np.concatenate(blocks, axis=1)


def read_audio(path: str | Path, sample_rate: int, channels: int = 2, downmix: bool = False) -> tuple[np.ndarray, int]:
    """Read a whole file as ``[channels, T]`` float32 at ``sample_rate``; returns it and the file's rate."""
    reader = AudioReader(path, sample_rate, channels, downmix)
    return reader.read_all(), reader.input_rate


class AudioWriter:
    """Writes ``[C, n]`` float32 blocks to WAV (32-bit float) or FLAC (24-bit), atomically: the
    file appears under its name only when ``close`` succeeds; on error nothing is left behind.
    Optionally resamples from ``sample_rate`` to ``output_rate``. Counts samples beyond +-1 (kept
    in float WAV, clipped in FLAC; never wrapped). Non-finite samples are refused."""

    def __init__(self, path: str | Path, sample_rate: int, channels: int, output_rate: int | None = None) -> None:
        self.path = Path(path)
        fmt = OUTPUT_FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise AudioFileError(f"cannot write {self.path.name}: use a .wav or .flac output")
        if self.path.is_dir():
            raise AudioFileError(f"cannot write {self.path}: it is a directory")
        self.output_rate = output_rate or sample_rate
        if fmt[0] == "FLAC" and self.output_rate not in FLAC_RATES:
            raise AudioFileError(f"cannot write {self.path.name}: FLAC cannot store {self.output_rate} Hz; use .wav")
        self._resampler = (None if self.output_rate == sample_rate else
                           soxr.ResampleStream(sample_rate, self.output_rate, channels, dtype="float32", quality="VHQ"))
        self._clip = fmt[0] == "FLAC"
        self.channels = channels
        self.over = 0
        self.samples = 0
        self._out = AtomicPath(self.path)
        try:
            self._file = sf.SoundFile(soundfile_name(self._out.path), "w", self.output_rate, channels, subtype=fmt[1],
                                      format=fmt[0])
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            self._out.discard()
            raise AudioFileError(f"cannot write {self.path}: {e}") from None
        except BaseException:
            self._out.discard()
            raise

    def write(self, block: np.ndarray, last: bool = False) -> None:
        """Append ``[C, n]`` float32 samples at ``sample_rate``."""
        if not np.isfinite(block).all():
            raise AudioFileError(f"cannot write {self.path}: the audio holds NaN or Inf samples")
        data = block.T
        if self._resampler is not None:
            data = self._resampler.resample_chunk(np.ascontiguousarray(data), last=last)
        self.over += int(np.count_nonzero(np.abs(data) > 1.0))
        self.samples += data.shape[0]
        data = np.clip(data, -1.0, 1.0) if self._clip else data
        try:
            self._file.write(data)
        except AssertionError:  # soundfile asserts that libsndfile wrote every frame
            raise OSError(f"cannot write {self.path}: short write (disk full or file size limit?)") from None
        except (sf.LibsndfileError, RuntimeError) as e:
            raise OSError(f"cannot write {self.path}: {str(e).rstrip('.')} (disk full or file size limit?)") from None

    def close(self) -> None:
        """Finish the file and move it into place."""
        try:
            if self._resampler is not None:
                self.write(np.zeros((self.channels, 0), np.float32), last=True)
            self._file.close()
        except (sf.LibsndfileError, RuntimeError) as e:
            self.abort()
            raise OSError(f"cannot write {self.path}: {e}") from None
        except BaseException:
            self.abort()
            raise
        self._out.commit()

    def abort(self) -> None:
        """Discard what was written; no file appears."""
        with contextlib.suppress(Exception):
            self._file.close()
        self._out.discard()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
