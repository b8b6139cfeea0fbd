"""Audio and latent files through a ``Codec``: what the command line does, as a Python API.

>>> codec = Codec.load("models/demo")
>>> encode_file(codec, "song.flac", "song.npz")        # -> EncodeStats
>>> decode_file(codec, "song.npz", "song.wav")         # -> DecodeStats
>>> roundtrip_file(codec, "song.flac", "out.wav")      # -> RoundtripStats, with quality
>>> stream_file(codec, "song.flac", "out.wav", block=4096)   # -> StreamStats, per-block timing

Files are processed block by block, so memory does not grow with their length, and every output
is written atomically: on any error (``same_edge.Error`` for bad input, ``OSError`` for the
file system) no output file is left behind and an existing one is kept as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .audio import AudioReader, AudioWriter
from .codec import Codec
from .errors import ConfigError, LatentFileError
from .latents import LatentHeader, LatentReader, LatentWriter
from .metrics import Quality, QualityMeter

DECODE_BLOCK_FRAMES = 64  # latent frames read and decoded per step of decode_file (6 s of audio)

Progress = Callable[[float], None]  # called with the seconds of audio just processed


@dataclass(frozen=True, kw_only=True)
class AudioStats:
    """What every file and stream call reports: the audio it went through."""

    samples: int  # audio samples, at the model's rate
    sample_rate: int  # the model's rate, Hz

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate


@dataclass(frozen=True, kw_only=True)
class EncodeStats(AudioStats):
    output: Path
    frames: int  # latent frames written
    source_rate: int  # the input file's rate, Hz
    seconds: float  # wall time


@dataclass(frozen=True, kw_only=True)
class DecodeStats(AudioStats):
    output: Path
    output_rate: int  # the written file's rate, Hz
    beyond_full_scale: int  # output samples beyond +-1 (kept in float WAV, clipped in FLAC)
    seconds: float  # wall time


@dataclass(frozen=True, kw_only=True)
class StreamStats(AudioStats):
    """What a stream did: ``compute`` is the seconds each pushed block took (encode + decode)."""

    block: int | None  # samples per pushed block (None: the file's own blocks)
    compute: tuple[float, ...]
    latency_samples: int  # algorithmic latency of encoder + decoder
    beyond_full_scale: int = 0
    quality: Quality | None = None

    @property
    def realtime_factor(self) -> float:
        """Audio seconds per second of compute."""
        total = sum(self.compute)
        return self.audio_seconds / total if total > 0 else float("inf")


@dataclass(frozen=True, kw_only=True)
class RoundtripStats(AudioStats):
    output: Path
    output_rate: int
    beyond_full_scale: int
    quality: Quality
    seconds: float  # wall time, encode + decode + file I/O

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.seconds if self.seconds > 0 else float("inf")


def _counted(blocks: Iterable[np.ndarray], progress: Progress | None, sample_rate: int) -> Iterator[np.ndarray]:
    for block in blocks:
        yield block
        if progress is not None:
            progress(block.shape[1] / sample_rate)


def rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a sequence of ``[C, n]`` blocks into blocks of ``size`` columns (the last may be shorter)."""
    if size < 1:
        raise ConfigError("block size must be at least 1")
    held: list[np.ndarray] = []
    count = 0
    for b in blocks:
        held.append(b)
        count += b.shape[1]
        if count < size:
            continue
        buf = np.concatenate(held, axis=1) if len(held) > 1 else held[0]
        whole = buf.shape[1] - buf.shape[1] % size
        for start in range(0, whole, size):
            yield buf[:, start : start + size]
        held, count = ([buf[:, whole:]], buf.shape[1] - whole) if whole < buf.shape[1] else ([], 0)
    if count:
        yield np.concatenate(held, axis=1)


def stream_through(codec: Codec, pieces: Iterable[np.ndarray], writer: AudioWriter, meter: QualityMeter | None = None,
                   largest_window: int | None = 1, block: int | None = None) -> StreamStats:
    """Push ``[C, n]`` audio pieces through a stream encoder and decoder (windows up to
    ``largest_window`` chunks: 1 is a live app, None is offline), write the output aligned to the
    input and trimmed to its length, and feed ``meter`` with (input, output) pairs."""
    enc, dec = codec.stream_encoder(largest_window), codec.stream_decoder(largest_window)
    compute: list[float] = []
    reference: list[np.ndarray] = []  # input not yet matched by output, for the meter: bounded by the latency
    total = emitted = 0  # at the model's rate (the writer may resample)

    def emit(y: np.ndarray) -> None:
        nonlocal emitted
        y = y[:, : total - emitted]  # decoding covers whole frames; the input ends mid-frame
        emitted += y.shape[1]
        if meter is not None and y.shape[1]:
            ref = np.concatenate(reference, axis=1)
            meter.update(ref[:, : y.shape[1]], y)
            reference[:] = [ref[:, y.shape[1] :]]
        writer.write(y)

    for piece in pieces:
        total += piece.shape[1]
        if meter is not None:
            reference.append(piece.copy())
        t0 = time.perf_counter()
        y = dec.push(enc.push(piece))
        compute.append(time.perf_counter() - t0)
        emit(y)
    emit(np.concatenate([dec.push(enc.flush()), dec.flush()], axis=1))
    return StreamStats(samples=total, sample_rate=codec.sample_rate, block=block, compute=tuple(compute),
                       latency_samples=enc.latency_samples + dec.latency_samples,
                       quality=None if meter is None else meter.result())


def encode_file(codec: Codec, audio_path: str | Path, latent_path: str | Path, *, downmix: bool = False,
                progress: Progress | None = None) -> EncodeStats:
    """Encode an audio file (any rate and format libsndfile reads) into a latent file (``.npz``)."""
    t0 = time.perf_counter()
    reader = AudioReader(audio_path, codec.sample_rate, codec.channels, downmix)
    enc = codec.stream_encoder(largest_window=None)
    samples = 0
    with LatentWriter(latent_path, codec.latent_dim) as latents:
        for block in _counted(reader.blocks(), progress, codec.sample_rate):
            samples += block.shape[1]
            latents.write(enc.push(block))
        latents.write(enc.flush())
        latents.header = LatentHeader(codec.sample_rate, samples, codec.manifest.model_id, reader.input_rate)
    return EncodeStats(output=Path(latent_path), frames=latents.frames, samples=samples, sample_rate=codec.sample_rate,
                       source_rate=reader.input_rate, seconds=time.perf_counter() - t0)


def check_latents_fit(codec: Codec, latents: LatentReader) -> None:
    """Refuse a latent file that this model did not encode, or whose shape and length disagree."""
    h, (dim, frames) = latents.header, latents.shape
    if h.model_id != codec.manifest.model_id:
        raise LatentFileError(f"{latents.path} was encoded by another model ({h.model_id}); "
                              f"{codec.model_dir or 'the model (loaded from memory)'} is {codec.manifest.model_id}")
    if h.sample_rate != codec.sample_rate or dim != codec.latent_dim \
            or not (frames - 1) * codec.hop < h.length <= frames * codec.hop:
        raise LatentFileError(f"{latents.path} holds {dim} x {frames} latents for {h.length} samples at "
                              f"{h.sample_rate} Hz, which this model ({codec.latent_dim}-dim, hop {codec.hop}) "
                              "cannot have produced")


def decode_file(codec: Codec, latent_path: str | Path, audio_path: str | Path, *, keep_rate: bool = False,
                progress: Progress | None = None) -> DecodeStats:
    """Decode a latent file to audio of the encoded input's exact length (WAV float or FLAC 24-bit),
    at the model's rate or, with ``keep_rate``, at the rate of the file that was encoded."""
    t0 = time.perf_counter()
    with LatentReader(latent_path) as latents:
        check_latents_fit(codec, latents)
        h = latents.header
        out_rate = h.source_rate if keep_rate else codec.sample_rate
        dec = codec.stream_decoder(largest_window=None)
        remaining = h.length
        with AudioWriter(audio_path, codec.sample_rate, codec.channels, out_rate) as writer:
            for block in _then_none(latents.blocks(DECODE_BLOCK_FRAMES)):
                y = dec.flush() if block is None else dec.push(block)
                y = y[:, :remaining]
                remaining -= y.shape[1]
                writer.write(y)
                if progress is not None:
                    progress(y.shape[1] / codec.sample_rate)
    return DecodeStats(output=Path(audio_path), samples=h.length, sample_rate=codec.sample_rate, output_rate=out_rate,
                       beyond_full_scale=writer.over, seconds=time.perf_counter() - t0)


def _then_none(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
    yield from blocks
    yield None


def roundtrip_file(codec: Codec, audio_path: str | Path, output_path: str | Path, *, keep_rate: bool = False,
                   downmix: bool = False, progress: Progress | None = None) -> RoundtripStats:
    """Encode and decode an audio file (offline windows) and measure the reconstruction's quality."""
    t0 = time.perf_counter()
    reader = AudioReader(audio_path, codec.sample_rate, codec.channels, downmix)
    meter = QualityMeter(codec.sample_rate)
    out_rate = reader.input_rate if keep_rate else codec.sample_rate
    with AudioWriter(output_path, codec.sample_rate, codec.channels, out_rate) as writer:
        stats = stream_through(codec, _counted(reader.blocks(), progress, codec.sample_rate), writer, meter,
                               largest_window=None)
    return RoundtripStats(output=Path(output_path), samples=stats.samples, sample_rate=codec.sample_rate,
                          output_rate=out_rate, beyond_full_scale=writer.over, quality=meter.result(),
                          seconds=time.perf_counter() - t0)


def stream_file(codec: Codec, audio_path: str | Path, output_path: str | Path, *, block: int | None = None,
                downmix: bool = False, meter: QualityMeter | None = None) -> StreamStats:
    """Play a file through the streaming API (window 1) in blocks of ``block`` samples (default:
    one hop), as a live app would, and write the output; returns per-block compute times."""
    block = codec.hop if block is None else block
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ConfigError(f"block must be a positive number of samples, got {block!r}")
    reader = AudioReader(audio_path, codec.sample_rate, codec.channels, downmix)
    with AudioWriter(output_path, codec.sample_rate, codec.channels) as writer:
        stats = stream_through(codec, rechunk(reader.blocks(), block), writer, meter, block=block)
    return replace(stats, beyond_full_scale=writer.over)
