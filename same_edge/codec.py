"""Encode and decode audio with exported SAME graphs: offline and streaming, exact.

Vocabulary (used the same way everywhere in same-edge, its manifest and docs/EMBEDDING.md):

patch   ``patch_size`` (256) consecutive samples of every channel: one transformer token.
hop     audio samples per latent frame: ``patch_size * stride`` (4096 for SAME-S).
frame   one latent vector ``[latent_dim]`` and the hop of audio it stands for; in the transformer,
        ``stride`` patch tokens plus the frame's learned token.
chunk   ``frames_per_chunk`` frames: the smallest unit a graph runs. For SAME-S an attention
        chunk (2 frames, ``chunk_samples`` = 8192 samples); for SAME-L one frame.
window  the chunks one graph call takes (1, 4, 16 by default): its signature ``encode_<n>``.
block   what a caller pushes into a stream: any number of samples or frames.

The graphs take whole chunks plus a small carried state, so a stream is a sequence of window
calls and a flush. The offline ``encode``/``decode`` are the same stream driven with the largest
windows, so streaming and offline results are identical. SAME-S flushes with its graphs' flush
signatures; SAME-L (sliding-window attention, ``manifest.model.attention``) with windows of padding,
each window taking a key bias the host computes from the stream's position (``same_edge.sliding``).

Threads: a ``Codec`` may be shared by threads, and streams made from it may run concurrently on
different threads (an encoder stream on the capture thread and a decoder stream on the playback
thread, say): each stream owns its state and its pending input, and each graph serialises its
own calls. One stream must not be pushed from two threads at once (that raises ``StreamError``).

Buffers: a stream copies what it needs from the arrays pushed into it before ``push`` returns,
so the caller may refill and push the same buffer again.

This is the reference streaming engine. libsame_edge (native/src/same_edge.c) is a second
implementation of the same host loop in C; tests/test_native.py holds the two bit-identical (facts,
offline, odd lengths, random push sizes, at 1 and 2 threads, plain and under ASan/UBSan).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ConfigError, ModelDirError, OutputError, StreamError
from .graph import Graph, check_threads, weight_cache_file
from .manifest import GRAPH_FILES, MANIFEST_NAME, SIDES, GraphSpec, Manifest, check_graph, parse_manifest, read_manifest
from .sliding import stream_key_bias


def _check_array(x: object, rows: int, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise StreamError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise StreamError(f"{what} must be float32, got {x.dtype}")
    if x.ndim != 2 or x.shape[0] != rows:
        raise StreamError(f"{what} must have shape [{rows}, N], got {list(x.shape)}")
    if not np.isfinite(x).all():
        raise StreamError(f"{what} contains NaN or Inf")
    return x


class _Stream:
    """Shared bookkeeping of both directions: pending input, carried state, window plan.

    Pending input is less than one chunk's worth, held in a buffer the stream owns; whole
    windows are run straight from the caller's array within ``push``."""

    _nonfinite_message = ""  # the OutputError of a window that returned NaN or Inf, per direction
    _carried: tuple[str, ...] = ("_state",)  # the arrays a window carries to the next one (reset zeroes them)

    def __init__(self, codec: Codec, side: str, largest_window: int | None, rows_in: int, rows_out: int,
                 what: str, unit: int) -> None:
        self._codec = codec
        self._graph = codec._graph(side)
        self._spec: GraphSpec = codec.manifest.graph(side)
        self._rows_in, self._rows_out = rows_in, rows_out
        self._what = what  # name of the input, for error messages
        self._unit = unit  # input columns per chunk
        windows = codec.manifest.windows
        if largest_window is not None and (isinstance(largest_window, bool) or not isinstance(largest_window, int)
                                           or largest_window < 1):
            raise ConfigError(f"largest_window must be a positive number of chunks or None, got {largest_window!r}")
        self._windows = [w for w in windows if largest_window is None or w <= largest_window]
        self._state = np.zeros(self._spec.state_shape, np.float32)
        self._pending = np.zeros((rows_in, unit), np.float32)  # less than one chunk ever waits
        self._pending_len = 0
        self._scratch = np.zeros((rows_in, 0), np.float32)  # a window straddling pending and new input
        self._first = True
        self._skip = self._spec.start_skip
        self._flushed = False
        self._broken: str | None = None
        self._in_total = self._out_total = 0
        self._sliding = codec.manifest.model.sliding
        self._frames_run = 0  # frames given to the window graphs so far: SAME-L's key bias position
        self._total_frames: int | None = None  # the stream's length in frames, known at the flush
        self._busy = threading.Lock()

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency in samples: the most audio this stream holds back (see the manifest)."""
        raise NotImplementedError

    @contextmanager
    def _held(self) -> Iterator[None]:
        """Hold the stream (refused while another thread does) and its codec (refused once closed)."""
        if not self._busy.acquire(blocking=False):
            raise StreamError("this stream is being used by another thread; give each thread its own stream")
        try:
            with self._codec._in_use():
                yield
        finally:
            self._busy.release()

    @contextmanager
    def _call(self) -> Iterator[None]:
        with self._held():
            if self._broken:
                raise StreamError(f"this stream failed earlier ({self._broken}); start a new one or reset() it")
            if self._flushed:
                raise StreamError("this stream was flushed; start a new one or reset() it")
            try:
                yield
            except OutputError as e:
                self._broken = str(e)
                raise

    def reset(self) -> None:
        """Return the stream to its start, to reuse it for the next song: the carried state and the
        pending input are zeroed in place and the counters cleared, so nothing is allocated; a
        flushed or failed stream takes input again. What the stream returns after a reset equals
        what a new stream's would, bit for bit. Refused with ``StreamError`` while another thread
        uses the stream (as ``push`` is) and once the codec is closed."""
        with self._held():
            for name in self._carried:
                getattr(self, name).fill(0.0)
            self._pending.fill(0.0)  # _scratch holds nothing between calls: each use writes what it reads
            self._pending_len = 0
            self._first = True
            self._skip = self._spec.start_skip
            self._flushed = False
            self._broken = None
            self._in_total = self._out_total = 0
            self._frames_run, self._total_frames = 0, None

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add input columns (audio ``[C, n]`` or latents ``[latent_dim, k]``, float32, any count);
        return the output that is now final. ``x`` is not referenced after the call returns."""
        with self._call():
            x = _check_array(x, self._rows_in, self._what)
            n = x.shape[1]
            self._in_total += n
            total = self._pending_len + n
            out, used = self._run_windows(x, total // self._unit)
            # Less than a chunk is left: copy it into the pending buffer. A window, when one ran,
            # consumed all earlier pending input (pending < one chunk <= a window).
            p, rest = self._pending_len, total - used
            if used < p:
                self._pending[:, p:rest] = x
            else:
                self._pending[:, :rest] = x[:, used - p :]
            self._pending_len = rest
            return self._emit(out)

    def flush(self) -> np.ndarray:
        """Finish the stream and return the rest of its output; the stream takes no more input."""
        with self._call():
            self._flushed = True
            if self._in_total == 0:
                return np.zeros((self._rows_out, 0), np.float32)
            self._total_frames = self._stream_frames()
            out = self._run_tail() if self._pending_len else []
            self._pending_len = 0
            out.append(self._flush_padding() if self._sliding else self._checked(self._finish()))
            y = np.concatenate(out, axis=1)[:, : self._total_out() - self._out_total]
            self._out_total += y.shape[1]
            return np.ascontiguousarray(y)

    def _columns(self, x: np.ndarray, start: int, count: int) -> np.ndarray:
        """Columns ``[start, start + count)`` of pending input followed by ``x``."""
        p = self._pending_len
        if start >= p:
            return x[:, start - p : start - p + count]
        if self._scratch.shape[1] < count:
            self._scratch = np.zeros((self._rows_in, count), np.float32)
        window = self._scratch[:, :count]
        head = p - start
        window[:, :head] = self._pending[:, start:p]
        window[:, head:] = x[:, : count - head]
        return window

    def _plan(self, chunks: int) -> list[int]:
        """Window sizes covering ``chunks`` chunks, largest first."""
        plan = []
        for w in reversed(self._windows):
            while chunks >= w:
                plan.append(w)
                chunks -= w
        return plan

    def _run_windows(self, x: np.ndarray, chunks: int, keep_last: int | None = None) -> tuple[list[np.ndarray], int]:
        out, used = [], 0
        for w in self._plan(chunks):
            columns = w * self._unit
            y = self._checked(self._window(w, self._columns(x, used, columns), keep_last))
            used += columns
            if self._skip:
                cut = min(self._skip, y.shape[1])
                y, self._skip = y[:, cut:], self._skip - cut
            out.append(y)
        return out, used

    def _emit(self, out: list[np.ndarray]) -> np.ndarray:
        y = np.concatenate(out, axis=1) if out else np.zeros((self._rows_out, 0), np.float32)
        self._out_total += y.shape[1]
        return y

    def _key_bias(self, frames: int) -> np.ndarray:
        """SAME-L: the key bias of the next window of ``frames`` frames (``same_edge.sliding``)."""
        depth, carried = self._spec.state_shape[:2]
        bias = stream_key_bias(depth, carried // 2, self._frames_run, frames, self._total_frames)
        self._frames_run += frames
        return bias

    def _flush_padding(self) -> np.ndarray:
        """SAME-L's flush: the stream lags ``depth * w`` frames, so push as many frames of padding,
        which the key bias hides from every real frame."""
        depth, carried = self._spec.state_shape[:2]
        lag = depth * (carried // 2)
        out, _ = self._run_windows(np.zeros((self._rows_in, lag * self._unit), np.float32), lag)
        return np.concatenate(out, axis=1)

    def _first_flag(self) -> np.ndarray:
        flag = np.array([1.0 if self._first else 0.0], np.float32)
        self._first = False
        return flag

    def _checked(self, y: np.ndarray) -> np.ndarray:
        if not np.isfinite(y).all():
            raise OutputError(self._nonfinite_message)
        return y

    def _window(self, w: int, columns: np.ndarray, keep_last: int | None) -> np.ndarray:
        """Run one ``w``-chunk window on ``columns``; carry the state; return its output."""
        raise NotImplementedError

    def _run_tail(self) -> list[np.ndarray]:
        """Run the last, partial chunk of input, padded as the whole-sequence model pads it."""
        raise NotImplementedError

    def _finish(self) -> np.ndarray:
        """The flush signature's output."""
        raise NotImplementedError

    def _stream_frames(self) -> int:
        """Latent frames of the whole stream."""
        raise NotImplementedError

    def _total_out(self) -> int:
        """Output columns of the whole stream."""
        raise NotImplementedError


class StreamEncoder(_Stream):
    """Push audio blocks of any size, get latent frames as soon as they are final.

    ``push([C, n] float32) -> [latent_dim, k]``; ``flush() -> [latent_dim, rest]``. The
    concatenation equals ``Codec.encode`` of the concatenated audio, bit for bit. Windows up to
    ``largest_window`` chunks: 1 by default (the lowest latency), None for any (throughput); the
    same as ``Codec.stream_encoder``.
    """

    _nonfinite_message = "the encoder produced NaN or Inf latents (is the input audio within a sane range?)"

    def __init__(self, codec: Codec, largest_window: int | None = 1) -> None:
        m = codec.manifest.model
        super().__init__(codec, "encoder", largest_window, m.channels, m.latent_dim, "audio", m.chunk_samples)

    @property
    def latency_samples(self) -> int:
        return self._codec.manifest.encoder_latency_samples

    def _window(self, w: int, columns: np.ndarray, keep_last: int | None) -> np.ndarray:
        run = self._graph[self._spec.signature(w)]
        if self._sliding:
            res = run(audio=columns, state=self._state, key_bias=self._key_bias(w))
        else:
            res = run(audio=columns, state=self._state, first=self._first_flag())
        self._state = res["state"]
        return res["latents"]

    def _run_tail(self) -> list[np.ndarray]:
        self._pending[:, self._pending_len :] = 0.0  # the model zero-pads audio to whole chunks
        self._pending_len = self._unit
        out, _ = self._run_windows(np.zeros((self._rows_in, 0), np.float32), 1)
        return out

    def _finish(self) -> np.ndarray:
        return self._graph[self._spec.signature(None)](state=self._state)["latents"]

    def _stream_frames(self) -> int:
        return -(-self._in_total // self._codec.hop)  # the frames that cover real audio

    def _total_out(self) -> int:
        return self._stream_frames()


class StreamDecoder(_Stream):
    """Push latent frames of any count, get audio as soon as it is final.

    ``push([latent_dim, k] float32) -> [C, n]``; ``flush() -> [C, rest]``. The concatenation
    equals ``Codec.decode`` of the concatenated latents (``L * hop`` samples), bit for bit.
    Windows up to ``largest_window`` chunks, as ``StreamEncoder``.
    """

    _nonfinite_message = "the decoder produced NaN or Inf audio (are the latents from this model's encoder?)"
    _carried = ("_state", "_context")

    def __init__(self, codec: Codec, largest_window: int | None = 1) -> None:
        m = codec.manifest.model
        super().__init__(codec, "decoder", largest_window, m.latent_dim, m.channels, "latents", m.frames_per_chunk)
        if self._sliding:
            self._carried = ("_state",)  # SAME-L's k = 1 output conv carries no context
        else:
            self._context = np.zeros(self._spec.context_shape, np.float32)

    @property
    def latency_samples(self) -> int:
        return self._codec.manifest.decoder_latency_samples

    def _window(self, w: int, columns: np.ndarray, keep_last: int | None) -> np.ndarray:
        if self._sliding:  # whole frames only: no tail to keep part of
            res = self._graph[self._spec.signature(w)](latents=columns, state=self._state, key_bias=self._key_bias(w))
            self._state = res["state"]
            return res["audio"]
        keep = np.ones(columns.shape[1], np.float32)
        if keep_last is not None:
            keep[keep_last:] = 0.0
        res = self._graph[self._spec.signature(w)](latents=columns, keep=keep, state=self._state, context=self._context,
                                                   first=self._first_flag())
        self._state, self._context = res["state"], res["context"]
        return res["audio"]

    def _run_tail(self) -> list[np.ndarray]:
        # An odd tail: the whole-sequence model pads it with zeros in model space (keep = 0).
        real = self._pending_len
        self._pending[:, real:] = 0.0
        self._pending_len = self._unit
        out, _ = self._run_windows(np.zeros((self._rows_in, 0), np.float32), 1, keep_last=real)
        return out

    def _finish(self) -> np.ndarray:
        return self._graph[self._spec.signature(None)](state=self._state, context=self._context)["audio"]

    def _stream_frames(self) -> int:
        return self._in_total

    def _total_out(self) -> int:
        return self._in_total * self._codec.hop


def _check_options(threads: int | None, weight_cache_dir: str | Path | None) -> int:
    """The thread count, once both load options are known good."""
    threads = check_threads(threads)
    if weight_cache_dir is not None and not os.path.isdir(weight_cache_dir):
        raise ConfigError(f"weight_cache_dir is not a directory: {weight_cache_dir}")
    return threads


def _as_bytes(data: object, name: str) -> bytes:
    """The contents of a model file given in memory, as immutable ``bytes`` (LiteRT runs them in place)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise ConfigError(f"{name}: expected its contents as bytes, got {type(data).__name__} "
                      "(Codec.load reads a model directory)")


class Codec:
    """A SAME autoencoder exported by ``same-edge export``, run on the CPU through LiteRT.

    >>> codec = Codec.load("models/demo")
    >>> z = codec.encode(audio)   # [2, T] float32 at codec.sample_rate -> [latent_dim, ceil(T / hop)]
    >>> y = codec.decode(z)       # [latent_dim, L] -> [2, L * hop]
    """

    def __init__(self, model_dir: Path | None, manifest: Manifest, graphs: dict[str, Graph]) -> None:
        self.model_dir = model_dir  # None for a Codec.from_bytes
        self.manifest = manifest
        self._graphs = graphs
        self._closed = False
        self._uses = 0  # calls running now, on any thread; close() waits for them
        self._idle = threading.Condition()
        self._depth = threading.local()  # this thread's nested uses (encode runs a stream)

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        """Hold the graphs for one call: ``close()`` waits until it returns."""
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            with self._idle:
                if self._closed:
                    raise StreamError("this Codec was closed (Codec.close()); load the model again")
                self._uses += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self._idle:
                    self._uses -= 1
                    self._idle.notify_all()

    @classmethod
    def load(cls, model_dir: str | Path, threads: int | None = None, sides: Collection[str] = SIDES,
             verify: bool = True, weight_cache_dir: str | Path | None = None) -> Codec:
        """Load ``DIR/encoder.tflite`` and ``DIR/decoder.tflite`` as ``DIR/manifest.json`` describes.

        ``threads``: CPU threads for LiteRT, 1 to 256 (None: every available core). ``sides``: the
        graphs to load; an app that only decodes loads ``("decoder",)`` and holds half the memory.
        ``verify``: check each graph's sha256 against the manifest (its size and structure are
        always checked); ``False`` saves reading the file once more at start-up.
        ``weight_cache_dir``: a directory where XNNPACK keeps each graph's packed weights between
        loads, so that later loads skip the packing (``encoder-<sha256[:16]>.xnn`` and
        ``decoder-...``, see ``same_edge.graph.weight_cache_file``). None: in memory where the OS
        has ``memfd_create`` (Linux, Android), elsewhere a temporary file removed at close.
        """
        model_dir = Path(model_dir)
        sides = sides if isinstance(sides, str) else tuple(sides)  # an iterator is read once
        unknown = set(sides) - set(SIDES)
        if unknown or not sides or isinstance(sides, str):
            raise ConfigError(f"sides must be some of {list(SIDES)}, got {sides!r}")
        threads = _check_options(threads, weight_cache_dir)
        manifest = read_manifest(model_dir)
        return cls._open(model_dir, manifest, sides, weight_cache_dir, lambda side, spec, cache: Graph(
            model_dir / GRAPH_FILES[side], threads, cache, size=spec.bytes, sha256=spec.sha256 if verify else None))

    @classmethod
    def from_bytes(cls, manifest: bytes, encoder: bytes | None = None, decoder: bytes | None = None,
                   threads: int | None = None, verify: bool = True,
                   weight_cache_dir: str | Path | None = None) -> Codec:
        """Load a model an app holds in memory (a package resource, a zip member): the contents of
        ``manifest.json`` and of the graphs to load, ``encoder.tflite``, ``decoder.tflite`` or both
        (the sides given are the sides loaded). Checked as ``load`` checks a directory (the
        manifest, each graph's size, sha256 unless ``verify=False``, structure and embedded
        manifest), with messages that name ``encoder.tflite (from memory)``; the outputs are
        ``load``'s bit for bit. ``threads`` and ``weight_cache_dir`` as in ``load``. The bytes are
        not copied (a ``bytearray`` or ``memoryview`` is, once) and stay referenced while the
        graphs live; ``model_dir`` is None."""
        given = {side: _as_bytes(data, GRAPH_FILES[side]) for side, data in zip(SIDES, (encoder, decoder), strict=True)
                 if data is not None}
        if not given:
            raise ConfigError("Codec.from_bytes needs the bytes of encoder.tflite, decoder.tflite or both")
        threads = _check_options(threads, weight_cache_dir)
        parsed = parse_manifest(_as_bytes(manifest, MANIFEST_NAME), f"{MANIFEST_NAME} (from memory)")
        return cls._open(None, parsed, tuple(given), weight_cache_dir, lambda side, spec, cache: Graph.from_bytes(
            given[side], GRAPH_FILES[side], threads, cache, size=spec.bytes, sha256=spec.sha256 if verify else None))

    @classmethod
    def _open(cls, model_dir: Path | None, manifest: Manifest, sides: Collection[str], weight_cache_dir: str | Path | None,
              open_graph: Callable[[str, GraphSpec, str | None], Graph]) -> Codec:
        """A Codec of the graphs ``open_graph(side, spec, weight_cache)`` opens, each checked against
        ``manifest`` (its signatures, embedded manifest and tensors)."""
        graphs = {}
        for side in SIDES:
            if side in sides:
                spec = manifest.graph(side)
                cache = None if weight_cache_dir is None else weight_cache_file(weight_cache_dir, side, spec.sha256)
                graph = graphs[side] = open_graph(side, spec, cache)
                expected = set(spec.signatures)
                if set(graph.signatures) != expected:
                    raise ModelDirError(f"{graph.source} does not match the manifest: signatures "
                                        f"{sorted(graph.signatures)}, expected {sorted(expected)}")
                check_graph(manifest, side, graph)  # its embedded manifest and its tensors
        return cls(model_dir, manifest, graphs)

    def _graph(self, side: str) -> Graph:
        try:
            return self._graphs[side]
        except KeyError:
            how = f"Codec.from_bytes(..., {side}=...)" if self.model_dir is None else "Codec.load(..., sides=...)"
            raise StreamError(f"this Codec was loaded without its {side} ({how})") from None

    def close(self) -> None:
        """Release the LiteRT graphs now rather than when the Codec is collected; a call running on
        another thread finishes first. Any use afterwards (its streams too) raises ``StreamError``."""
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._uses == 0)
        for graph in self._graphs.values():
            graph.close()

    def __enter__(self) -> Codec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sides(self) -> tuple[str, ...]:
        """The graphs this Codec loaded."""
        return tuple(self._graphs)

    @property
    def threads(self) -> int:
        """CPU threads LiteRT runs the graphs with."""
        return next(iter(self._graphs.values())).threads

    @property
    def sample_rate(self) -> int:
        """Audio sample rate in Hz (44100 for SAME-S)."""
        return self.manifest.model.sample_rate

    @property
    def channels(self) -> int:
        return self.manifest.model.channels

    @property
    def latent_dim(self) -> int:
        return self.manifest.model.latent_dim

    @property
    def hop(self) -> int:
        """Audio samples per latent frame (4096 for SAME-S)."""
        return self.manifest.model.hop

    @property
    def encoder_latency_samples(self) -> int:
        """The most audio a stream encoder holds back, in samples (3 frames for SAME-S)."""
        return self.manifest.encoder_latency_samples

    @property
    def decoder_latency_samples(self) -> int:
        """The most audio a stream decoder holds back behind its input, in samples."""
        return self.manifest.decoder_latency_samples

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """[C, T] float32 at ``sample_rate`` -> latents [latent_dim, ceil(T / hop)] float32."""
        with self._in_use():
            enc = self.stream_encoder(largest_window=None)
            head = enc.push(audio)
            return np.concatenate([head, enc.flush()], axis=1)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """[latent_dim, L] float32 -> audio [C, L * hop] float32 at ``sample_rate``."""
        with self._in_use():
            dec = self.stream_decoder(largest_window=None)
            head = dec.push(latents)
            return np.concatenate([head, dec.flush()], axis=1)

    def stream_encoder(self, largest_window: int | None = 1) -> StreamEncoder:
        """A new encoding stream, using windows up to ``largest_window`` chunks (1 by default: the
        lowest latency; None: any, for throughput)."""
        return StreamEncoder(self, largest_window)

    def stream_decoder(self, largest_window: int | None = 1) -> StreamDecoder:
        """A new decoding stream, using windows up to ``largest_window`` chunks (1 by default: the
        lowest latency; None: any, for throughput)."""
        return StreamDecoder(self, largest_window)
