"""Property-based fuzzing (hypothesis) of everything same-edge reads from a file a user hands it:
latent files, model manifests and WAV headers.

Each reader either gives well-formed data (finite float32 of the declared shape, a manifest that
satisfies its documented invariants) or raises its own error, which the command line prints as one
line with exit status 2: never another exception, and never a partial output file. The budget is
the ``ci`` profile registered in conftest.py: a fixed number of derandomized examples per test, so
that CI runs the same examples every time.
"""

from __future__ import annotations

import copy
import io
import json
import re
import struct
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from same_edge import Codec
from same_edge.audio import AudioReader
from same_edge.errors import AudioFileError, LatentFileError, ModelDirError, OutputError
from same_edge.files import decode_file
from same_edge.latents import LATENTS_MEMBER, LatentFile, LatentReader
from same_edge.manifest import PRECISIONS, SIDES, Manifest, read_manifest
from same_edge.models import DEMO_MODEL_DIR

MANIFEST = json.loads((DEMO_MODEL_DIR / "manifest.json").read_text())
MODEL = Manifest.parse(MANIFEST)
SPEC = MODEL.model
FRAMES = 3  # latent frames of the valid file every latent mutation starts from
HEADER_FIELDS = ("sample_rate", "length", "model_id", "source_rate")
SHA256 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def decoder() -> Codec:
    return Codec.load(DEMO_MODEL_DIR, sides=("decoder",))


# -- latent files ---------------------------------------------------------------------------------


def _npy(value: Any) -> bytes:
    """One ``.npy`` member; objects numpy cannot store natively are pickled (which the reader refuses)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(value), allow_pickle=True)
    return buf.getvalue()


def _valid_members() -> dict[str, bytes]:
    """The members of a latent file the demo model could have written: 256 x 3 frames."""
    z = np.random.default_rng(0).normal(size=(SPEC.latent_dim, FRAMES)).astype(np.float32)
    return {LATENTS_MEMBER: _npy(np.asfortranarray(z)), "sample_rate.npy": _npy(np.int64(SPEC.sample_rate)),
            "length.npy": _npy(np.int64(FRAMES * SPEC.hop - 5)), "model_id.npy": _npy(np.str_(MODEL.model_id)),
            "source_rate.npy": _npy(np.int64(48000))}


def _zip(members: dict[str, bytes], methods: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=(methods or {}).get(name, zipfile.ZIP_STORED))
    return buf.getvalue()


def _read_or_refused(path: Path) -> np.ndarray | None:
    """The latents of ``path`` read a few frames at a time, or None if refused with a LatentFileError;
    ``LatentFile.load`` must give the same verdict and values."""
    try:
        with LatentReader(path) as r:
            shape = r.shape
            z = np.concatenate([np.zeros((shape[0], 0), np.float32), *r.blocks(2)], axis=1)
    except LatentFileError:
        z = None
    else:
        assert z.dtype == np.float32 and z.shape == shape and np.isfinite(z).all()
    try:
        whole = LatentFile.load(path).latents
    except LatentFileError:
        assert z is None, "LatentFile.load refused a file LatentReader reads"
    else:
        assert z is not None and np.array_equal(whole, z)
    return z


def _check_latent_file(data: bytes, decoder: Codec) -> np.ndarray | None:
    """Write ``data`` as a latent file, read it, and decode it to a WAV: the reading is checked by
    ``_read_or_refused``; decoding writes a whole file of the header's length or nothing at all."""
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "z.npz", Path(tmp) / "out.wav"
        path.write_bytes(data)
        z = _read_or_refused(path)
        try:
            stats = decode_file(decoder, path, out)
        except (LatentFileError, OutputError):  # OutputError: finite latents the model turns into NaN
            assert sorted(p.name for p in Path(tmp).iterdir()) == ["z.npz"], "a failed decode left a file behind"
        else:
            assert z is not None, "decode_file accepted a file the reader refuses"
            audio, _ = sf.read(str(out), dtype="float32")
            assert audio.shape == (stats.samples, SPEC.channels) and np.isfinite(audio).all()
        return z


# Values of every type and range a header field could hold: lists, complex, inf, nan, 2**40,
# negative, strings, bytes, object arrays (pickled), multi-dimensional arrays.
BAD_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 2**31, 2**40, 2**62, 2**64, 2**80, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(),
    st.booleans(),
    st.text(max_size=300),
    st.binary(max_size=40),
    st.lists(st.integers(-(2**40), 2**40), max_size=4),
    st.sampled_from([None, np.array([None], object), np.zeros((2, 2), np.int64), np.array(200, np.uint8),
                     np.array(44100, np.uint32),
                     np.array(44100, ">i8"), np.array(44100.0, np.float16), np.array([MODEL.model_id]),
                     np.array(MODEL.model_id.encode())]),
)


@given(field=st.sampled_from(HEADER_FIELDS), value=BAD_VALUES)
def test_latent_header_fields_of_any_type_or_range_are_read_or_refused_with_a_latent_file_error(decoder, field, value):
    members = _valid_members()
    members[f"{field}.npy"] = _npy(value)
    _check_latent_file(_zip(members), decoder)


LATENT_DTYPES = ("<f4", ">f4", "<f8", "<f2", "|u1", "<i4", "|O", "<c8", "|b1", "<U4")


@given(shape=st.one_of(st.sampled_from([[SPEC.latent_dim, FRAMES], [SPEC.latent_dim, 1], [SPEC.latent_dim, 0], [8, 3]]),
                      st.lists(st.one_of(st.integers(-3, 600), st.sampled_from([2**31, 2**40, 2**63 - 1])), max_size=3)),
       dtype=st.sampled_from(LATENT_DTYPES), fortran=st.booleans(), version=st.sampled_from([(1, 0), (2, 0)]),
       data=st.one_of(st.none(), st.binary(max_size=4 * 256 * 4), st.integers(0, 4 * 256 * 4)))
def test_latent_members_of_any_declared_shape_dtype_and_size_are_read_or_refused(decoder, shape, dtype, fortran,
                                                                                 version, data):
    buf = io.BytesIO()
    header = {"descr": dtype, "fortran_order": fortran, "shape": tuple(shape)}
    {(1, 0): np.lib.format.write_array_header_1_0, (2, 0): np.lib.format.write_array_header_2_0}[version](buf, header)
    # data: random bytes, that many bytes of finite float32 values, or (None) as many as the header declares
    floats = np.random.default_rng(1).normal(size=1024).astype("<f4").tobytes()
    if data is None:
        data = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize if all(d >= 0 for d in shape) else 0
    buf.write(data if isinstance(data, bytes) else floats[: min(data, len(floats))])
    members = _valid_members()
    members[LATENTS_MEMBER] = buf.getvalue()
    _check_latent_file(_zip(members), decoder)


VALID_FILE = _zip(_valid_members())


@given(flips=st.lists(st.tuples(st.integers(0, len(VALID_FILE) - 1), st.integers(1, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, len(VALID_FILE) - 1)))
def test_flipped_or_truncated_bytes_of_a_latent_file_are_read_or_refused_and_never_leave_a_partial_output(
        decoder, flips, cut):
    data = bytearray(VALID_FILE)
    for position, xor in flips:
        data[position] ^= xor
    _check_latent_file(bytes(data[:cut]), decoder)


METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
DAMAGE = ("none", "encrypted", "unknown_method", "corrupt_data", "wrong_size")


def _member_offsets(data: bytes, name: str) -> tuple[int, int, int]:
    """(local header offset, central directory entry offset, data offset) of member ``name``."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.getinfo(name).header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    return local, central, local + 30 + name_len + extra_len


@given(methods=st.lists(st.sampled_from(METHODS), min_size=5, max_size=5), damage=st.sampled_from(DAMAGE),
       target=st.sampled_from([LATENTS_MEMBER, *(f"{f}.npy" for f in HEADER_FIELDS)]),
       where=st.floats(0, 1), value=st.integers(0, 0xFFFF))
def test_members_compressed_encrypted_or_of_unknown_method_are_read_in_blocks_or_refused(decoder, methods, damage,
                                                                                         target, where, value):
    members = _valid_members()
    data = bytearray(_zip(members, dict(zip(members, methods, strict=True))))
    local, central, start = _member_offsets(bytes(data), target)
    compressed = struct.unpack_from("<I", data, central + 20)[0]
    if damage == "encrypted":  # general-purpose flag bit 0, in both headers
        for offset in (local + 6, central + 8):
            data[offset] |= 1
    elif damage == "unknown_method":
        method = value if value not in METHODS else 99
        struct.pack_into("<H", data, local + 8, method)
        struct.pack_into("<H", data, central + 10, method)
    elif damage == "corrupt_data" and compressed:
        data[start + int(where * (compressed - 1))] ^= 0x5A
    elif damage == "wrong_size":  # the stored (uncompressed) size disagrees with the member's content
        for offset in (local + 22, central + 24):
            struct.pack_into("<I", data, offset, value)
    z = _check_latent_file(bytes(data), decoder)
    if damage == "none":  # every compression method zipfile writes is read, a block at a time
        assert z is not None and z.shape == (SPEC.latent_dim, FRAMES)


# -- manifests ------------------------------------------------------------------------------------


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.sampled_from([0, -1, 1, 2, 2**31, 2**40, 2**63, 10**100]),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
              st.sampled_from(["", "w8a8", "encoder.tflite", "0" * 64, "é☃\U0001f3b5", "\x00", "a" * 10_000])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)


def _deep(depth: int) -> list:
    nested: list = []
    for _ in range(depth):
        nested = [nested]
    return nested


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a decoded JSON document (dict keys and list indices)."""
    found = [prefix] if prefix else []
    children = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in children:
        found += _paths(value, (*prefix, key))
    return found


MANIFEST_PATHS = _paths(MANIFEST)


def _mutate(raw: Any, draw: Callable[[st.SearchStrategy], Any]) -> str | None:
    """Apply one random mutation in place; returns its kind (None if the drawn path is gone)."""
    path = draw(st.sampled_from(MANIFEST_PATHS))
    parent = raw
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return None  # an earlier mutation removed or replaced the way there
    if not isinstance(parent, dict | list):
        return None
    op = draw(st.sampled_from(["delete", "replace", "zero", "negate", "huge", "deep", "unicode_key"]))
    key = path[-1]
    if isinstance(parent, list) and not (isinstance(key, int) and key < len(parent)):
        return None
    if isinstance(parent, dict) and key not in parent:
        return None
    if op == "delete":
        del parent[key]
    elif op == "replace":
        parent[key] = draw(JSON_VALUES)
    elif op == "zero":
        parent[key] = 0
    elif op == "negate":
        value = parent[key]
        parent[key] = -value if isinstance(value, int | float) and not isinstance(value, bool) else -1
    elif op == "huge":
        parent[key] = draw(st.sampled_from([2**31, 2**53, 2**63, 2**64 + 1, 10**300, 10**4000, 1e308]))
    elif op == "deep":
        parent[key] = _deep(draw(st.sampled_from([10, 500, 5000, 100_000])))
    elif isinstance(parent, dict):  # a unicode key beside the real one
        parent[draw(st.text(min_size=1, max_size=8))] = parent[key]
    return op


def _check_manifest_invariants(m: Manifest, round_trip: bool = True) -> None:
    """What a parsed manifest promises the runtime (manifest.py's validation, restated)."""
    spec = m.model
    geometry = (spec.sample_rate, spec.channels, spec.latent_dim, spec.hop, spec.frames_per_chunk, spec.chunk_samples)
    assert all(type(v) is int and v >= 1 for v in geometry)
    assert spec.chunk_samples == spec.frames_per_chunk * spec.hop and spec.frames_per_chunk % 2 == 0
    assert m.windows and m.windows[0] == 1 and list(m.windows) == sorted(set(m.windows))
    assert all(type(w) is int for w in m.windows)
    assert m.precision in PRECISIONS
    assert SHA256.fullmatch(m.source.config_sha256) and SHA256.fullmatch(m.source.checkpoint_sha256)
    for side in SIDES:
        g = m.graph(side)
        assert type(g.bytes) is int and g.bytes >= 1 and SHA256.fullmatch(g.sha256)
        assert len(g.state_shape) == 3 and all(type(d) is int and d >= 1 for d in g.state_shape)
        # start skips at most one smallest window's output (the decoder's strictly less); flushes positive
        if side == "encoder":
            assert 0 <= g.start_skip <= spec.frames_per_chunk and 1 <= g.flush_length <= spec.frames_per_chunk
        else:
            assert 0 <= g.start_skip < spec.chunk_samples and 1 <= g.flush_length <= spec.chunk_samples
            assert g.context_shape is not None and all(d >= 1 for d in g.context_shape)
        assert set(g.signatures) == {g.signature(w) for w in (*m.windows, None)}
    if round_trip:  # what parses, serialises and parses back the same
        assert Manifest.from_json(m.to_json()).to_json() == m.to_json()


@given(data=st.data(), mutations=st.integers(1, 4))
def test_mutated_manifests_parse_to_a_valid_manifest_or_raise_a_model_dir_error(data, mutations):
    raw = copy.deepcopy(MANIFEST)
    ops = [_mutate(raw, data.draw) for _ in range(mutations)]
    try:
        manifest = Manifest.parse(raw)
    except ModelDirError as e:
        assert "\n" not in str(e) and len(str(e)) < 1000  # one short line for the command line
        return
    # nesting beyond json's own limit (only a Python caller can pass it) need not serialise
    _check_manifest_invariants(manifest, round_trip="deep" not in ops)


MANIFEST_TEXT = (DEMO_MODEL_DIR / "manifest.json").read_bytes()


@given(flips=st.lists(st.tuples(st.integers(0, len(MANIFEST_TEXT) - 1), st.integers(1, 255)), max_size=4),
       cut=st.one_of(st.none(), st.integers(0, len(MANIFEST_TEXT) - 1)),
       nesting=st.one_of(st.none(), st.sampled_from([100, 990, 5000, 200_000])))
def test_damaged_manifest_files_are_read_or_refused_with_a_model_dir_error(flips, cut, nesting):
    text = bytearray(MANIFEST_TEXT)
    for position, xor in flips:
        text[position] ^= xor
    text = text[:cut]
    if nesting is not None:  # a value nested beyond any parser's stack
        text = text.replace(b'"w8a8"', b"[" * nesting + b"]" * nesting, 1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("encoder.tflite", "decoder.tflite"):
            (Path(tmp) / name).write_bytes(b"graph")
        (Path(tmp) / "manifest.json").write_bytes(bytes(text))
        try:
            manifest = read_manifest(tmp)
        except ModelDirError as e:
            assert "\n" not in str(e)
            return
    _check_manifest_invariants(manifest)


# -- WAV headers ----------------------------------------------------------------------------------


def _wav(subtype: str, rate: int, channels: int, frames: int = 2000) -> bytes:
    t = np.arange(frames) / rate
    audio = 0.5 * np.sin(2 * np.pi * 440 * t)[:, None].repeat(channels, axis=1)
    buf = io.BytesIO()
    sf.write(buf, audio, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


WAVS = (_wav("PCM_16", 44100, 2), _wav("FLOAT", 48000, 1), _wav("PCM_24", 22050, 2), _wav("ULAW", 8000, 1))


@given(wav=st.sampled_from(WAVS), flips=st.lists(st.tuples(st.integers(0, 63), st.integers(1, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 4000)))
def test_wav_files_with_mutated_headers_or_truncated_are_read_or_refused_with_an_audio_file_error(wav, flips, cut):
    data = bytearray(wav)
    for position, xor in flips:
        data[position] ^= xor
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.wav"
        path.write_bytes(bytes(data[:cut]))
        try:
            audio = AudioReader(path, 44100).read_all()
        except AudioFileError as e:
            assert "\n" not in str(e)
            return
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[0] == 2 and audio.shape[1] > 0
    assert np.isfinite(audio).all()
