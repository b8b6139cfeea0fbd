"""The self-description of an exported model directory: typed, versioned, validated, torch-free.

``manifest.json`` sits beside ``encoder.tflite`` and ``decoder.tflite``; export writes it from
these dataclasses (``Manifest.to_dict``) and the runtime reads it back through ``Manifest.parse``,
which checks every field's type, range and consistency and names the field it refuses. The same
description (without the graphs' own sizes and hashes) is embedded in each graph's flatbuffer
metadata under ``METADATA_KEY``, so a lone ``.tflite`` still says what it is; ``check_graph``
refuses a manifest.json that differs from it.

Manifests are strict JSON (``strict_json``), read alike here and by libsame_edge.
"""

from __future__ import annotations

import json
import math
import mmap
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import ModelDirError
from .strict_json import check_values, loads_json, short

FORMAT = "same-edge-model"
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
METADATA_KEY = "same_edge.manifest"
SIDES = ("encoder", "decoder")
GRAPH_FILES = {"encoder": "encoder.tflite", "decoder": "decoder.tflite"}
SIGNATURE_PREFIX = {"encoder": "encode", "decoder": "decode"}
MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is a few kB; more is not one
MAX_DIM = 1 << 24  # no shape, rate or length of a SAME model comes near this
MAX_ELEMENTS = 1 << 26  # elements of one tensor: libsame_edge's bound too
# A graph's manifest entries written once its file exists: not in the manifest the graph embeds.
FILE_FIELDS = ("bytes", "sha256", "ops", "delegation")

# Every precision export can write: name -> what its graphs hold.
PRECISIONS = {
    "fp32": "float32 weights and activations",
    "w16a32": "float16 weights, float32 compute",
    "w8a32": "int8 channelwise weights, dequantised to float32 compute",
    "w8a8": "int8 channelwise weights, dynamically quantised int8 activations",
    "w4a8": "int4 blockwise (32) weights, dynamically quantised int8 activations",
}

T = TypeVar("T")


class _Fields:
    """Typed access to one JSON object, naming the dotted path of any field it refuses."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise ModelDirError(f"manifest field {path or 'root'}: expected an object, got {type(raw).__name__}")
        self.raw, self.path = raw, path

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        if key not in self.raw:
            raise ModelDirError(f"manifest field {self._name(key)} is missing")
        return self.raw[key]

    def fail(self, key: str, why: str) -> ModelDirError:
        return ModelDirError(f"manifest field {self._name(key)} {why}")

    def int(self, key: str, low: int = 1, high: int = MAX_DIM) -> int:
        v = self.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(key, f"must be an integer, got {type(v).__name__}")
        if not low <= v <= high:
            raise self.fail(key, f"must lie in [{low}, {high}], got {short(v)}")
        return v

    def str(self, key: str, pattern: str = r".+") -> str:
        v = self.get(key)
        if not isinstance(v, str) or not re.fullmatch(pattern, v):
            raise self.fail(key, f"must be a string matching {pattern!r}, got {short(v)}")
        return v

    def shape(self, key: str, ndim: int | None = None) -> tuple[int, ...]:
        v = self.get(key)
        if (not isinstance(v, list) or not v or (ndim is not None and len(v) != ndim)
                or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_DIM for d in v)):
            want = f"{ndim} positive integers" if ndim else "a list of positive integers"
            raise self.fail(key, f"must be {want}, got {short(v)}")
        if math.prod(v) > MAX_ELEMENTS:
            raise self.fail(key, f"is implausibly large ({short(v)})")
        return tuple(v)

    def obj(self, key: str) -> _Fields:
        return _Fields(self.get(key), self._name(key))

    def map(self, key: str, parse: Callable[[_Fields], T]) -> dict[str, T]:
        inner = self.obj(key)
        return {str(k): parse(inner.obj(str(k))) for k in inner.raw}


@dataclass(frozen=True)
class SignatureSpec:
    """Named tensor shapes of one graph signature (float32, static, no batch dimension)."""

    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]

    @classmethod
    def parse(cls, f: _Fields) -> SignatureSpec:
        return cls({k: f.obj("inputs").shape(k) for k in f.obj("inputs").raw},
                   {k: f.obj("outputs").shape(k) for k in f.obj("outputs").raw})


@dataclass(frozen=True)
class GraphSpec:
    """One side's graph file and the stream constants its host loop needs.

    ``start_skip``: output columns the first window call returns before the stream's first real
    output (latent frames for the encoder, audio samples for the decoder); ``flush_length``: output
    columns of the flush signature. ``context_shape`` is the decoder's conv look-back (None for the
    encoder)."""

    side: str
    file: str
    bytes: int
    sha256: str
    state_shape: tuple[int, ...]
    start_skip: int
    flush_length: int
    signatures: dict[str, SignatureSpec]
    context_shape: tuple[int, ...] | None = None
    ops: dict[str, Any] = field(default_factory=dict)  # op counts and weight dtypes, for `same-edge info`
    delegation: dict[str, Any] = field(default_factory=dict)  # XNNPACK partitions per signature, from export

    def signature(self, window: int | None) -> str:
        """The signature name of a window size (None: the flush)."""
        return f"{SIGNATURE_PREFIX[self.side]}_{'flush' if window is None else window}"


@dataclass(frozen=True)
class ModelSpec:
    """The audio and latent geometry of a SAME model.

    hop: audio samples per latent frame; frames_per_chunk: latent frames of the smallest window a
    graph runs (an attention chunk of SAME-S's chunked attention; 1 for SAME-L's sliding window);
    chunk_samples = frames_per_chunk * hop. attention: ``"chunked"`` (SAME-S: the midpoint-shifted
    chunks, streamed with a flush signature) or ``"sliding"`` (SAME-L: each token sees
    ``window_frames`` frames either side; the host computes each window's ``key_bias``, see
    ``same_edge.sliding``). A chunked model's manifest leaves both fields out."""

    sample_rate: int
    channels: int
    latent_dim: int
    hop: int
    frames_per_chunk: int
    chunk_samples: int
    config: dict[str, Any]
    attention: str = "chunked"
    window_frames: int | None = None

    @property
    def sliding(self) -> bool:
        return self.attention == "sliding"

    def to_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        if not self.sliding:
            del fields["attention"], fields["window_frames"]
        fields["config"] = fields.pop("config")  # the geometry first, the whole config last
        return fields


@dataclass(frozen=True)
class Source:
    config_file: str
    config_sha256: str
    checkpoint_file: str
    checkpoint_sha256: str


@dataclass(frozen=True)
class Manifest:
    """A model directory's description (``manifest.json``, format version ``FORMAT_VERSION``).

    ``document``: the decoded JSON it was parsed from, which ``check_graph`` compares with what
    each graph embeds (None for a manifest built in code)."""

    model: ModelSpec
    precision: str
    windows: tuple[int, ...]  # window sizes in chunks, ascending; each graph has one signature per size
    encoder: GraphSpec
    decoder: GraphSpec
    source: Source
    tools: dict[str, str]
    document: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def model_id(self) -> str:
        """Identity of the weights (config and checkpoint hashes), shared by every precision."""
        return f"{self.source.config_sha256[:16]}-{self.source.checkpoint_sha256[:16]}"

    @property
    def precision_description(self) -> str:
        return PRECISIONS[self.precision]

    def graph(self, side: str) -> GraphSpec:
        return {"encoder": self.encoder, "decoder": self.decoder}[side]

    @property
    def encoder_latency_samples(self) -> int:
        """The most audio a stream encoder holds back: a chunk's frames wait for the next chunk's
        first half (the shifted attention pairs them), so up to ``frames_per_chunk * 3 / 2`` frames."""
        m = self.model
        return m.chunk_samples + self.encoder.start_skip * m.hop

    @property
    def decoder_latency_samples(self) -> int:
        """The most audio a stream decoder holds back behind the latents pushed: a window waits for
        its chunk's last frame, and its output lags by ``start_skip`` samples."""
        m = self.model
        return (m.frames_per_chunk - 1) * m.hop + self.decoder.start_skip

    # -- serialisation --------------------------------------------------------------------------

    def to_dict(self, with_files: bool = True) -> dict[str, Any]:
        """The JSON layout of ``manifest.json``; ``with_files=False`` leaves out the graphs' sizes
        and hashes (the form embedded in the graphs themselves)."""

        def graph(g: GraphSpec) -> dict[str, Any]:
            out: dict[str, Any] = {"file": g.file}
            if with_files:
                out |= {"bytes": g.bytes, "sha256": g.sha256}
            out["state_shape"] = list(g.state_shape)
            if g.side == "encoder":
                out |= {"start_skip_frames": g.start_skip, "flush_frames": g.flush_length}
            else:
                if g.context_shape is not None:  # SAME-L's decoder carries none
                    out["context_shape"] = list(g.context_shape)
                out |= {"start_skip_samples": g.start_skip, "flush_samples": g.flush_length}
            out["signatures"] = {name: {"inputs": {k: list(v) for k, v in s.inputs.items()},
                                        "outputs": {k: list(v) for k, v in s.outputs.items()}}
                                 for name, s in g.signatures.items()}
            if g.ops:
                out["ops"] = g.ops
            if g.delegation:
                out["delegation"] = g.delegation
            return out

        return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": self.model.to_dict(),
                "precision": self.precision, "windows": list(self.windows),
                "encoder": graph(self.encoder), "decoder": graph(self.decoder),
                "source": asdict(self.source), "tools": dict(self.tools)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def parse(cls, raw: Any, with_files: bool = True) -> Manifest:
        """Validate a decoded ``manifest.json``; raises ``ModelDirError`` naming the first bad field."""
        try:
            check_values(raw)
        except ValueError as e:
            raise ModelDirError(f"manifest is not valid JSON ({e})") from None
        root = _Fields(raw, "")
        if root.get("format") != FORMAT:
            raise root.fail("format", f"must be {FORMAT!r}: not a same-edge model manifest")
        version = root.get("format_version")
        if type(version) is not int or version != FORMAT_VERSION:  # 2.0 and true are not 2
            raise root.fail("format_version", f"is {short(version)}; this same-edge reads version {FORMAT_VERSION} "
                            "(re-export the model with this version's `same-edge export`)")
        mf = root.obj("model")
        config = mf.get("config")
        if not isinstance(config, dict):
            raise mf.fail("config", "must be an object")
        attention = mf.str("attention") if "attention" in mf.raw else "chunked"
        if attention not in ("chunked", "sliding"):
            raise mf.fail("attention", f"must be 'chunked' or 'sliding', got {attention!r:.40}")
        window = mf.int("window_frames", 1, 4096) if attention == "sliding" else None
        if window is None and "window_frames" in mf.raw:
            raise mf.fail("window_frames", "is for sliding attention only")
        model = ModelSpec(mf.int("sample_rate", 1000, 1_000_000), mf.int("channels", 1, 64), mf.int("latent_dim"),
                          mf.int("hop"), mf.int("frames_per_chunk", 1, 4096), mf.int("chunk_samples"), config,
                          attention, window)
        if model.chunk_samples != model.frames_per_chunk * model.hop:
            raise mf.fail("chunk_samples", f"must equal frames_per_chunk * hop = {model.frames_per_chunk * model.hop}")
        if model.sliding and model.frames_per_chunk != 1:
            raise mf.fail("frames_per_chunk", "must be 1 for sliding attention (its windows are whole frames)")
        if not model.sliding and model.frames_per_chunk % 2:
            raise mf.fail("frames_per_chunk", "must be even (the midpoint shift moves half a chunk)")
        precision = root.str("precision")
        if precision not in PRECISIONS:
            raise root.fail("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r:.40}")
        windows = root.get("windows")
        if (not isinstance(windows, list) or not windows
                or any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 4096 for w in windows)
                or windows != sorted(set(windows)) or windows[0] != 1):
            raise root.fail("windows", f"must be unique ascending chunk counts in [1, 4096] starting at 1, got {short(windows)}")
        sf = root.obj("source")
        source = Source(sf.str("config_file"), sf.str("config_sha256", r"[0-9a-f]{64}"), sf.str("checkpoint_file"),
                        sf.str("checkpoint_sha256", r"[0-9a-f]{64}"))
        tools = root.get("tools")
        if not isinstance(tools, dict) or not all(isinstance(v, str) for v in tools.values()):
            raise root.fail("tools", "must map tool names to version strings")
        graphs = {side: _parse_graph(root.obj(side), side, model, tuple(windows), with_files) for side in SIDES}
        return cls(model, precision, tuple(windows), graphs["encoder"], graphs["decoder"], source, dict(tools), raw)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            raw = loads_json(text)
        except (ValueError, RecursionError) as e:  # RecursionError: absurd nesting
            raise ModelDirError(f"manifest is not valid JSON ({type(e).__name__}: {str(e)[:80]})") from None
        return cls.parse(raw)


def _parse_graph(f: _Fields, side: str, model: ModelSpec, windows: tuple[int, ...], with_files: bool) -> GraphSpec:
    encoder = side == "encoder"
    file = f.str("file")
    if file != GRAPH_FILES[side]:
        raise f.fail("file", f"must be {GRAPH_FILES[side]!r}")
    size = f.int("bytes", 1, 1 << 40) if with_files else 0
    digest = f.str("sha256", r"[0-9a-f]{64}") if with_files else ""
    if model.sliding:
        state, context, skip, flush = _sliding_stream(f, encoder, model)
    else:
        state, context, skip, flush = _chunked_stream(f, encoder, model)
    signatures = f.map("signatures", SignatureSpec.parse)
    prefix = SIGNATURE_PREFIX[side]
    expected = {f"{prefix}_{w}" for w in windows} | (set() if model.sliding else {f"{prefix}_flush"})
    if set(signatures) != expected:
        raise f.fail("signatures", f"must be {sorted(expected)}, got {sorted(signatures)}")
    rows_in, rows_out = (model.channels, model.latent_dim) if encoder else (model.latent_dim, model.channels)
    for w in windows:
        name, sig = f"{prefix}_{w}", signatures[f"{prefix}_{w}"]
        frames = w * model.frames_per_chunk
        if model.sliding:
            key_bias = (state[0], frames + state[1])
            want_in = {"audio": (rows_in, frames * model.hop), "state": state, "key_bias": key_bias} if encoder else \
                {"latents": (rows_in, frames), "state": state, "key_bias": key_bias}
        else:
            want_in = {"audio": (rows_in, w * model.chunk_samples), "state": state, "first": (1,)} if encoder else \
                {"latents": (rows_in, frames), "keep": (frames,), "state": state, "context": context, "first": (1,)}
        want_out = {"latents": (rows_out, frames), "state": state} if encoder else \
            {"audio": (rows_out, frames * model.hop), "state": state}
        if context is not None:
            want_out["context"] = context
        if sig.inputs != want_in or sig.outputs != want_out:
            raise f.fail(f"signatures.{name}", f"must take {want_in} and give {want_out}")
    if not model.sliding:
        flush_sig = signatures[f"{prefix}_flush"]
        want_in = {"state": state} if encoder else {"state": state, "context": context}
        want_out = {"latents": (rows_out, flush)} if encoder else {"audio": (rows_out, flush)}
        if flush_sig.inputs != want_in or flush_sig.outputs != want_out:
            raise f.fail(f"signatures.{prefix}_flush", f"must take {want_in} and give {want_out}")
    ops, delegation = f.raw.get("ops", {}), f.raw.get("delegation", {})
    for key, value in (("ops", ops), ("delegation", delegation)):
        if not isinstance(value, dict):
            raise f.fail(key, "must be an object")
    return GraphSpec(side, file, size, digest, state, skip, flush, signatures, context, ops, delegation)


def _chunked_stream(f: _Fields, encoder: bool, model: ModelSpec) -> tuple[tuple[int, ...], tuple[int, ...] | None, int, int]:
    """SAME-S's state, conv context, start skip and flush length."""
    state = f.shape("state_shape", 3)
    half = model.frames_per_chunk // 2
    if state[0] != half:
        raise f.fail("state_shape", f"must hold frames_per_chunk / 2 = {half} frames, got {list(state)}")
    if encoder:
        frames = model.frames_per_chunk
        return state, None, f.int("start_skip_frames", 0, frames), f.int("flush_frames", 1, frames)
    return (state, f.shape("context_shape", 2), f.int("start_skip_samples", 0, model.chunk_samples - 1),
            f.int("flush_samples", 1, model.chunk_samples))


def _sliding_stream(f: _Fields, encoder: bool, model: ModelSpec) -> tuple[tuple[int, ...], None, int, int]:
    """SAME-L's state ``[depth, 2w, S, width]``; the stream lags ``depth * w`` frames, which the
    host skips at the start and flushes with as many frames of padding: the manifest must say so."""
    state = f.shape("state_shape", 4)
    w = model.window_frames or 0
    if state[1] != 2 * w:
        raise f.fail("state_shape", f"must hold 2 * window_frames = {2 * w} frames per block, got {list(state)}")
    if "context_shape" in f.raw:
        raise f.fail("context_shape", "is for chunked attention only (a sliding-window decoder carries no conv context)")
    lag = state[0] * w
    names, unit = (("start_skip_frames", "flush_frames"), 1) if encoder else (("start_skip_samples", "flush_samples"), model.hop)
    for name in names:
        if f.int(name, 0, MAX_DIM) != lag * unit:
            raise f.fail(name, f"must be depth * window_frames = {lag} frames ({lag * unit}), got {f.get(name)}")
    return state, None, lag * unit, lag * unit


def read_manifest(model_dir: str | Path) -> Manifest:
    """Read and validate ``DIR/manifest.json``; the graph files must exist beside it."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_NAME
    if not model_dir.is_dir():
        raise ModelDirError(f"model directory not found: {model_dir}")
    if not path.is_file():
        raise ModelDirError(f"{model_dir} has no {MANIFEST_NAME}: not a directory written by `same-edge export`")
    if path.stat().st_size > MAX_MANIFEST_BYTES:  # before reading it
        raise ModelDirError(f"{path} is {path.stat().st_size} bytes: too large to be a manifest")
    manifest = parse_manifest(path.read_bytes(), str(path))
    for side in SIDES:
        if not (model_dir / GRAPH_FILES[side]).is_file():
            raise ModelDirError(f"{model_dir} is missing {GRAPH_FILES[side]}")
    return manifest


def parse_manifest(data: bytes, source: str) -> Manifest:
    """Validate the contents of a ``manifest.json`` as ``read_manifest`` does (its size, strict JSON,
    every field); ``source`` names it in messages: its path, or ``"manifest.json (from memory)"``.
    Bytes, not text: its UTF-8 is checked with its JSON."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ModelDirError(f"{source} is {len(data)} bytes: too large to be a manifest")
    try:
        return Manifest.from_json(data)
    except ModelDirError as e:
        raise ModelDirError(f"{source}: {e}") from None


def read_embedded_manifest(tflite_path: str | Path) -> dict[str, Any] | None:
    """The manifest embedded in a ``.tflite`` file's metadata (decoded JSON), or None if it has none.
    The file is mapped, not read: only the flatbuffer's tables and the entry are touched."""
    try:
        with open(tflite_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return embedded_manifest(data, str(tflite_path))
    except ModelDirError:
        raise
    except (OSError, ValueError) as e:  # mapping an empty file is a ValueError
        raise ModelDirError(f"{tflite_path} is not a readable .tflite file ({e})") from None


def embedded_manifest(data: bytes | mmap.mmap, source: str) -> dict[str, Any] | None:
    """The manifest embedded in the metadata of a ``.tflite`` graph's bytes (decoded JSON), or None
    if it has none; ``source`` names the graph in messages."""
    from .flatbuffer import metadata_entry

    try:
        payload = metadata_entry(data, METADATA_KEY)
    except ValueError as e:  # GraphFileError is a ValueError
        raise ModelDirError(f"{source} is not a readable .tflite file ({e})") from None
    if payload is None:
        return None
    if len(payload) > MAX_MANIFEST_BYTES:
        raise ModelDirError(f"{source} embeds a manifest of {len(payload)} bytes: too large to be one")
    try:
        embedded = loads_json(payload)
    except (ValueError, RecursionError) as e:
        raise ModelDirError(f"{source} embeds a manifest that is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(embedded, dict):
        raise ModelDirError(f"{source} embeds a manifest that is not a JSON object")
    return embedded


_ABSENT = object()


def _same(a: Any, b: Any) -> bool:
    """Equal decoded JSON, types and all: 1, 1.0 and true differ, as they do in the file."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return a == b


def _first_difference(ours: dict[str, Any], theirs: dict[str, Any], path: str = "") -> tuple[str, Any, Any] | None:
    """The first field (dotted path; our members in document order, then theirs) whose values differ,
    with both values (``_ABSENT`` where missing); objects are compared member by member, other values
    whole. A graph's ``FILE_FIELDS`` are not compared. native/src/same_edge.c walks alike."""
    skip = FILE_FIELDS if path in SIDES else ()
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        if key in skip:
            continue
        name = f"{path}.{key}" if path else key
        a, b = ours.get(key, _ABSENT), theirs.get(key, _ABSENT)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, name)
            if found:
                return found
        elif not _same(a, b):
            return name, a, b
    return None


def _field_name(path: str) -> str:
    """A dotted path for a one-line message: control characters as ``?``, at most 120 characters."""
    path = re.sub("[\x00-\x1f]", "?", path)
    return path if len(path) <= 120 else path[:117] + "..."


def _brief(value: Any) -> str:
    """A value for a one-line message, as JSON; objects as ``{...}`` (the walk names their members)."""
    if value is _ABSENT:
        text = "(absent)"
    elif isinstance(value, dict):
        text = "{...}"
    elif isinstance(value, list):
        text = "[" + ", ".join(_brief(v) for v in value[:16]) + (", ...]" if len(value) > 16 else "]")
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def check_graph(manifest: Manifest, side: str, graph: Any) -> None:
    """Refuse a loaded graph (a ``same_edge.graph.Graph``) that is not the one ``manifest`` describes:
    the manifest its metadata embeds must be manifest.json's (but for ``FILE_FIELDS``: an edited start
    skip or sample rate would shift or mislabel the output silently), and its signatures must take
    and give the manifest's tensors. A graph that embeds no manifest is refused: every export embeds one.
    Raises ``ModelDirError`` naming the first difference. The embedded manifest is read from the
    bytes the graph runs; a graph loaded from memory (``graph.path`` None) is named as it was given."""
    source = graph.source
    embedded = embedded_manifest(graph.data, source)
    if embedded is None:
        raise ModelDirError(f"{graph.name} embeds no manifest (metadata {METADATA_KEY!r}): {source} is not a graph "
                            "written by `same-edge export`")
    if manifest.document is not None:
        found = _first_difference(manifest.document, embedded)
        if found:
            dotted, ours, theirs = found
            where = f"{MANIFEST_NAME} (from memory)" if graph.path is None else f"{graph.path.parent}: {MANIFEST_NAME}"
            raise ModelDirError(f"{where} says {_field_name(dotted)} {_brief(ours)}, {graph.name} "
                                f"embeds {_brief(theirs)} (the manifest was edited, or the graphs are from another export)")
    described = manifest.graph(side).signatures
    for name, signature in graph.signatures.items():
        spec = described.get(name)
        if spec is None:
            raise ModelDirError(f"{source} does not match the manifest: it has a signature {name!r} the manifest lacks")
        for got, want in ((signature.inputs, spec.inputs), (signature.outputs, spec.outputs)):
            for tensor in [*want, *(t for t in got if t not in want)]:
                if tuple(got.get(tensor, ())) != tuple(want.get(tensor, ())):
                    raise ModelDirError(f"{source} does not match the manifest: {name}.{tensor} is "
                                        f"{_brief(list(got[tensor])) if tensor in got else '(absent)'}, the manifest "
                                        f"says {_brief(list(want[tensor])) if tensor in want else '(absent)'}")
