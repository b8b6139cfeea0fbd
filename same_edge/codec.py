"""Encode and decode audio with exported SAME graphs: offline and streaming, exact.

The graphs take whole attention chunks (``chunk_samples`` of audio, ``frames_per_chunk`` latent
frames) plus a small carried state, so a stream is a sequence of window calls and a flush. The
offline ``encode``/``decode`` are the same stream driven with the largest windows.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from .graph import Graph
from .manifest import GRAPH_FILES, Manifest, ModelDirError, read_manifest


def _check_array(x: np.ndarray, rows: int, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise ValueError(f"{what} must be float32, got {x.dtype}")
    if x.ndim != 2 or x.shape[0] != rows:
        raise ValueError(f"{what} must have shape [{rows}, N], got {list(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or Inf")
    return x


class _Stream:
    """Shared bookkeeping: pending input, carried state, window choice."""

    def __init__(self, codec: Codec, side: str, largest_window: int | None, rows: tuple[int, int], what: str,
                 unit: int) -> None:
        self._rows_in, self._rows_out = rows
        self._what = what  # name of the input, for error messages
        self._unit = unit  # input columns per attention chunk
        self._out_total = 0
        self._codec = codec
        self._graph = codec._graph(side)
        info = codec.manifest.graph(side)
        self._state = np.zeros(info["state_shape"], np.float32)
        windows = codec.manifest.windows
        self._windows = [w for w in windows if largest_window is None or w <= largest_window] or windows[:1]
        self._first = True
        self._flushed = False
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self._in_total = 0

    def _take(self, n: int) -> np.ndarray:
        """Remove and return the first n columns of the pending input."""
        data = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        head, rest = data[:, :n], data[:, n:]
        self._pending = [rest] if rest.shape[1] else []
        self._pending_len = rest.shape[1]
        return head

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency, in samples of stream time: the most between an input's arrival and
        the return of the output it determines (3 frames for SAME-S: a chunk fills, and its last
        half-chunk, plus one token for the decoder's k=3 conv, waits for the next chunk)."""
        return self._codec.latency_samples

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add input columns (audio ``[C, n]`` or latents ``[latent_dim, k]``, float32, any count);
        return the output that is now final."""
        self._check_open()
        x = _check_array(x, self._rows_in, self._what)
        if x.shape[1]:
            self._pending.append(x)
            self._pending_len += x.shape[1]
            self._in_total += x.shape[1]
        return self._emit(self._run(self._pending_len // self._unit))

    def _emit(self, out: list[np.ndarray]) -> np.ndarray:
        y = np.concatenate(out, axis=1) if out else np.zeros((self._rows_out, 0), np.float32)
        self._out_total += y.shape[1]
        return y

    def flush(self) -> np.ndarray:
        """Finish the stream and return the rest of its output; the stream takes no more input."""
        self._check_open()
        self._flushed = True
        if self._in_total == 0:
            return np.zeros((self._rows_out, 0), np.float32)
        out = self._run_tail() if self._pending_len else []
        out.append(self._finish())
        y = np.concatenate(out, axis=1)[:, : self._total_out() - self._out_total]
        self._out_total += y.shape[1]
        return np.ascontiguousarray(y)

    def _run(self, chunks: int) -> list[np.ndarray]:
        """Run whole chunks of pending input through the window signatures."""
        raise NotImplementedError

    def _run_tail(self) -> list[np.ndarray]:
        """Run the last, partial chunk of input, padded as the whole-sequence model pads it."""
        raise NotImplementedError

    def _finish(self) -> np.ndarray:
        """The flush signature's output."""
        raise NotImplementedError

    def _total_out(self) -> int:
        """Output columns of the whole stream."""
        raise NotImplementedError

    def _plan(self, chunks: int) -> list[int]:
        """Window sizes covering ``chunks`` chunks, largest first."""
        plan = []
        for w in reversed(self._windows):
            while chunks >= w:
                plan.append(w)
                chunks -= w
        return plan

    def _check_open(self) -> None:
        if self._flushed:
            raise ValueError("this stream was flushed; start a new one")

    def _first_flag(self) -> np.ndarray:
        flag = np.array([1.0 if self._first else 0.0], np.float32)
        self._first = False
        return flag


class StreamEncoder(_Stream):
    """Push audio blocks of any size, get latent frames as soon as they are final.

    ``push([C, n] float32) -> [latent_dim, k]``; ``flush() -> [latent_dim, rest]``. The
    concatenation equals ``Codec.encode`` of the concatenated audio.
    """

    def __init__(self, codec: Codec, largest_window: int | None = None) -> None:
        m = codec.manifest
        super().__init__(codec, "encoder", largest_window, (m.channels, m.latent_dim), "audio", m.chunk_samples)
        self._skip = m.graph("encoder")["start_skip_frames"]

    def _run(self, chunks: int) -> list[np.ndarray]:
        cs = self._codec.manifest.chunk_samples
        out = []
        for w in self._plan(chunks):
            res = self._graph[f"encode_{w}"](audio=self._take(w * cs), state=self._state, first=self._first_flag())
            self._state = res["state"]
            lat = res["latents"]
            if self._skip:
                lat, self._skip = lat[:, self._skip :], 0
            out.append(lat)
        return out

    def _run_tail(self) -> list[np.ndarray]:
        m = self._codec.manifest
        pad = -self._pending_len % m.chunk_samples  # the model zero-pads audio to whole chunks
        self._pending.append(np.zeros((m.channels, pad), np.float32))
        self._pending_len += pad
        return self._run(self._pending_len // m.chunk_samples)

    def _finish(self) -> np.ndarray:
        return self._graph["encode_flush"](state=self._state)["latents"]

    def _total_out(self) -> int:
        return -(-self._in_total // self._codec.hop)  # the frames that cover real audio


class StreamDecoder(_Stream):
    """Push latent frames of any count, get audio as soon as it is final.

    ``push([latent_dim, k] float32) -> [C, n]``; ``flush() -> [C, rest]``. The concatenation
    equals ``Codec.decode`` of the concatenated latents (``L * hop`` samples).
    """

    def __init__(self, codec: Codec, largest_window: int | None = None) -> None:
        m = codec.manifest
        super().__init__(codec, "decoder", largest_window, (m.latent_dim, m.channels), "latents", m.frames_per_chunk)
        info = m.graph("decoder")
        self._context = np.zeros(info["context_shape"], np.float32)
        self._skip = info["start_skip_samples"]

    def _run(self, chunks: int, keep_last: int | None = None) -> list[np.ndarray]:
        fpc = self._codec.manifest.frames_per_chunk
        out = []
        for w in self._plan(chunks):
            keep = np.ones(w * fpc, np.float32)
            if keep_last is not None:
                keep[keep_last:] = 0.0
            res = self._graph[f"decode_{w}"](
                latents=self._take(w * fpc), keep=keep, state=self._state, context=self._context, first=self._first_flag()
            )
            self._state, self._context = res["state"], res["context"]
            audio = res["audio"]
            if self._skip:
                audio, self._skip = audio[:, self._skip :], 0
            out.append(audio)
        return out

    def _run_tail(self) -> list[np.ndarray]:
        # An odd tail: the whole-sequence model pads it with zeros in model space.
        m, real = self._codec.manifest, self._pending_len
        self._pending.append(np.zeros((m.latent_dim, m.frames_per_chunk - real), np.float32))
        self._pending_len = m.frames_per_chunk
        return self._run(1, keep_last=real)

    def _finish(self) -> np.ndarray:
        return self._graph["decode_flush"](state=self._state, context=self._context)["audio"]

    def _total_out(self) -> int:
        return self._in_total * self._codec.hop


class Codec:
    """A SAME autoencoder exported by ``same-edge export``, run on the CPU through LiteRT.

    >>> codec = Codec.load("models/demo")
    >>> z = codec.encode(audio)   # [2, T] float32 at codec.sample_rate -> [latent_dim, ceil(T / hop)]
    >>> y = codec.decode(z)       # [latent_dim, L] -> [2, L * hop]
    """

    def __init__(self, model_dir: Path, manifest: Manifest, graphs: dict[str, Graph]) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self._graphs = graphs

    @classmethod
    def load(cls, model_dir: str | Path, threads: int | None = None,
             sides: Collection[str] = ("encoder", "decoder")) -> Codec:
        """Load ``DIR/encoder.tflite`` and ``DIR/decoder.tflite`` as ``DIR/manifest.json`` describes.

        ``threads``: CPU threads for LiteRT (None: every available core). ``sides``: the graphs to load;
        an app that only decodes loads ``("decoder",)`` and holds half the memory.
        """
        model_dir = Path(model_dir)
        manifest = read_manifest(model_dir)
        unknown = set(sides) - set(GRAPH_FILES)
        if unknown or not sides:
            raise ValueError(f"sides must be some of {sorted(GRAPH_FILES)}, got {sorted(sides)}")
        graphs = {side: Graph(model_dir / GRAPH_FILES[side], threads) for side in GRAPH_FILES if side in sides}
        for side, graph in graphs.items():
            expected = set(manifest.graph(side)["signatures"])
            if set(graph.signatures) != expected:
                raise ModelDirError(f"{graph.path} does not match the manifest: signatures {sorted(graph.signatures)}, "
                                    f"expected {sorted(expected)}")
        return cls(model_dir, manifest, graphs)

    def _graph(self, side: str) -> Graph:
        try:
            return self._graphs[side]
        except KeyError:
            raise ValueError(f"this Codec was loaded without its {side} (Codec.load(..., sides=...))") from None

    def close(self) -> None:
        """Release the LiteRT graphs now rather than when the Codec is collected."""
        for graph in self._graphs.values():
            graph.close()

    @property
    def threads(self) -> int:
        """CPU threads LiteRT runs the graphs with."""
        return next(iter(self._graphs.values())).threads

    @property
    def sample_rate(self) -> int:
        """Audio sample rate in Hz (44100 for SAME-S)."""
        return self.manifest.sample_rate

    @property
    def channels(self) -> int:
        return self.manifest.channels

    @property
    def latent_dim(self) -> int:
        return self.manifest.latent_dim

    @property
    def hop(self) -> int:
        """Audio samples per latent frame (4096 for SAME-S)."""
        return self.manifest.hop

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency of a stream in each direction, in samples."""
        m = self.manifest
        return (3 * m.frames_per_chunk // 2) * m.hop

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """[C, T] float32 at ``sample_rate`` -> latents [latent_dim, ceil(T / hop)] float32."""
        enc = self.stream_encoder(largest_window=None)
        head = enc.push(audio)
        return np.concatenate([head, enc.flush()], axis=1)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """[latent_dim, L] float32 -> audio [C, L * hop] float32 at ``sample_rate``."""
        dec = self.stream_decoder(largest_window=None)
        head = dec.push(latents)
        return np.concatenate([head, dec.flush()], axis=1)

    def stream_encoder(self, largest_window: int | None = 1) -> StreamEncoder:
        """A new encoding stream. Streams use the smallest window by default (lowest latency)."""
        return StreamEncoder(self, largest_window)

    def stream_decoder(self, largest_window: int | None = 1) -> StreamDecoder:
        """A new decoding stream. Streams use the smallest window by default (lowest latency)."""
        return StreamDecoder(self, largest_window)
