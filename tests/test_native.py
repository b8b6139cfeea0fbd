"""libsame_edge (native/) against the Python runtime, bit for bit; its error paths; its test
programs under AddressSanitizer and UndefinedBehaviorSanitizer; same-edge-native's files.

The native code is built here (CMake, incremental) into build/native and build/native-asan, the
same trees `make native` writes, so this file alone tests the current sources."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from build_lock import exclusive
from same_edge import Codec

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "demo"
BUILD, ASAN_BUILD = ROOT / "build" / "native", ROOT / "build" / "native-asan"
# The CLI too, so its files are compared under the sanitizers (ON spelled out: a tree configured
# before keeps OFF in its cache); the flags of `make native`.
ASAN_FLAGS = ("-DSAME_EDGE_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug", "-DSAME_EDGE_BUILD_CLI=ON")
THREADS = 2  # the same thread count on both sides of every comparison
SE_OK, SE_ERR_ARGUMENT, SE_ERR_MODEL, SE_ERR_RUNTIME, SE_ERR_STATE, SE_ERR_NO_MEMORY, SE_ERR_BUFFER_TOO_SMALL = range(7)
PLANAR, INTERLEAVED = 0, 1
sys.path.insert(0, str(ROOT / "benchmarks"))


def _litert_library() -> Path:
    import ai_edge_litert

    return Path(ai_edge_litert.__file__).parent / "libLiteRt.so"


def _cmake_build(tree: Path, *extra: str, litert: Path | None = None) -> None:
    """Configure and build native/ into `tree` (incrementally), against `litert` (default: the venv's)."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is missing: run `make native` (native/install-deps.sh installs it)")
    with exclusive(tree):
        subprocess.run(["cmake", "-S", str(ROOT / "native"), "-B", str(tree),
                        f"-DLITERT_LIBRARY={litert or _litert_library()}", *extra], check=True, capture_output=True,
                       text=True)
        done = subprocess.run(["cmake", "--build", str(tree), "-j2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="session")
def build() -> Path:
    _cmake_build(BUILD)
    return BUILD


@pytest.fixture(scope="session")
def asan_build() -> Path:
    _cmake_build(ASAN_BUILD, *ASAN_FLAGS)
    return ASAN_BUILD


class Native:
    """libsame_edge through ctypes (ctypes releases the GIL during calls: threads run in parallel)."""

    def __init__(self, path: Path) -> None:
        lib = self.lib = ctypes.CDLL(str(path))
        vp, sz, fp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p
        lib.se_version.restype = lib.se_litert_version.restype = lib.se_last_error.restype = ctypes.c_char_p
        lib.se_model_open.argtypes = [ctypes.c_char_p, vp, ctypes.POINTER(vp)]
        lib.se_model_close.argtypes = [vp]
        lib.se_model_close.restype = None
        for name in ("se_model_id", "se_model_precision"):
            getattr(lib, name).restype = ctypes.c_char_p
            getattr(lib, name).argtypes = [vp]
        for name in ("se_model_sample_rate", "se_model_channels", "se_model_latent_dim", "se_model_hop", "se_model_threads",
                     "se_model_encoder_latency_samples", "se_model_decoder_latency_samples"):
            getattr(lib, name).argtypes = [vp]
        for name in ("se_encoder_create", "se_decoder_create"):
            getattr(lib, name).argtypes = [vp, ctypes.c_int, ctypes.POINTER(vp)]
        lib.se_stream_free.argtypes = lib.se_stream_reset.argtypes = [vp]
        lib.se_stream_push_output_size.argtypes = [vp, sz]
        lib.se_stream_push_output_size.restype = sz
        lib.se_stream_flush_output_size.argtypes = [vp]
        lib.se_stream_flush_output_size.restype = sz
        lib.se_stream_push.argtypes = [vp, fp, sz, ctypes.c_int, fp, sz, ctypes.POINTER(sz)]
        lib.se_stream_flush.argtypes = [vp, ctypes.c_int, fp, sz, ctypes.POINTER(sz)]
        for name in ("se_encode", "se_decode"):
            getattr(lib, name).argtypes = [vp, fp, sz, ctypes.c_int, fp, sz, ctypes.POINTER(sz), vp]

    def error(self) -> str:
        """This thread's latest failure."""
        return self.lib.se_last_error().decode()


class ModelOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("threads", ctypes.c_int), ("sides", ctypes.c_int),
                ("weight_cache_dir", ctypes.c_char_p), ("skip_sha256", ctypes.c_int), ("log_level", ctypes.c_int),
                ("log_callback", ctypes.c_void_p), ("log_user_data", ctypes.c_void_p), ("litert_log_level", ctypes.c_int),
                ("reserved", ctypes.c_int)]


class Model:
    """A se_model handle."""

    def __init__(self, native: Native, model_dir: Path, threads: int = THREADS, weight_cache_dir: Path | None = None,
                 sides: int = 0) -> None:
        self.n, lib = native, native.lib
        options = ModelOptions()
        lib.se_model_options_init(ctypes.byref(options))
        options.threads, options.sides = threads, sides
        if weight_cache_dir is not None:
            options.weight_cache_dir = str(weight_cache_dir).encode()
        self.h = ctypes.c_void_p()
        status = lib.se_model_open(str(model_dir).encode(), ctypes.addressof(options), ctypes.byref(self.h))
        assert status == SE_OK, native.error()
        self.channels, self.dim = lib.se_model_channels(self.h), lib.se_model_latent_dim(self.h)
        self.hop = lib.se_model_hop(self.h)

    def close(self) -> None:
        self.n.lib.se_model_close(self.h)

    def offline(self, fn: str, x: np.ndarray, rows_out: int, cols_out: int, layout: int = PLANAR) -> np.ndarray:
        out = np.zeros((rows_out, cols_out) if layout == PLANAR else (cols_out, rows_out), np.float32)
        got = ctypes.c_size_t()
        src = np.ascontiguousarray(x if layout == PLANAR else x.T)
        status = getattr(self.n.lib, fn)(self.h, src.ctypes.data, x.shape[1], layout, out.ctypes.data, cols_out,
                                         ctypes.byref(got), None)
        assert status == SE_OK, self.n.error()
        assert got.value == cols_out
        return out if layout == PLANAR else np.ascontiguousarray(out.T)

    def encode(self, x: np.ndarray, layout: int = PLANAR) -> np.ndarray:
        return self.offline("se_encode", x, self.dim, -(-x.shape[1] // self.hop), layout)

    def decode(self, z: np.ndarray, layout: int = PLANAR) -> np.ndarray:
        return self.offline("se_decode", z, self.channels, z.shape[1] * self.hop, layout)

    def stream(self, decoder: bool, largest_window: int = 1) -> Stream:
        return Stream(self, decoder, largest_window)


class Stream:
    def __init__(self, model: Model, decoder: bool, largest_window: int) -> None:
        self.m, self.lib = model, model.n.lib
        self.h = ctypes.c_void_p()
        create = self.lib.se_decoder_create if decoder else self.lib.se_encoder_create
        assert create(model.h, largest_window, ctypes.byref(self.h)) == SE_OK, model.n.error()
        self.rows_out = model.channels if decoder else model.dim

    def _out(self, cols: int, layout: int) -> np.ndarray:
        return np.zeros((self.rows_out, max(cols, 1)) if layout == PLANAR else (max(cols, 1), self.rows_out), np.float32)

    def _result(self, out: np.ndarray, n: int, layout: int) -> np.ndarray:
        return out[:, :n].copy() if layout == PLANAR else np.ascontiguousarray(out[:n].T)

    def push(self, x: np.ndarray, layout: int = PLANAR) -> np.ndarray:
        want = self.lib.se_stream_push_output_size(self.h, x.shape[1])
        out, got = self._out(want, layout), ctypes.c_size_t()
        src = np.ascontiguousarray(x if layout == PLANAR else x.T)
        status = self.lib.se_stream_push(self.h, src.ctypes.data, x.shape[1], layout, out.ctypes.data, max(want, 1),
                                         ctypes.byref(got))
        assert status == SE_OK, self.m.n.error()
        assert got.value == want
        return self._result(out, got.value, layout)

    def flush(self, layout: int = PLANAR) -> np.ndarray:
        want = self.lib.se_stream_flush_output_size(self.h)
        out, got = self._out(want, layout), ctypes.c_size_t()
        status = self.lib.se_stream_flush(self.h, layout, out.ctypes.data, max(want, 1), ctypes.byref(got))
        assert status == SE_OK, self.m.n.error()
        assert got.value == want
        return self._result(out, got.value, layout)

    def reset(self) -> None:
        assert self.lib.se_stream_reset(self.h) == SE_OK, self.m.n.error()

    def free(self) -> None:
        self.lib.se_stream_free(self.h)


@pytest.fixture(scope="session")
def native(build) -> Native:
    return Native(build / "libsame_edge.so")


# The demo (SAME-S), the tiny SAME-S export and the tiny SAME-L export (sliding-window attention).
MODELS = ["demo", "tiny-fp32", "tiny-l-fp32"]


def _model_dir(request, name: str) -> Path:
    # The tiny exports convert graphs with torch: only when a test asks for one.
    if name == "demo":
        return DEMO
    return request.getfixturevalue("export_l_dir" if name == "tiny-l-fp32" else "export_dir")("fp32")


@pytest.fixture(scope="session", params=MODELS)
def model_dir(request) -> Path:
    return _model_dir(request, request.param)


@pytest.fixture(scope="session")
def pair(native, model_dir):
    """(native model, Python Codec) of one model directory, same threads."""
    m = Model(native, model_dir)
    codec = Codec.load(model_dir, threads=THREADS)
    yield m, codec
    m.close()
    codec.close()


def _audio(codec: Codec, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / codec.sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 0.5 * t)
    return (tone + 0.05 * rng.standard_normal((codec.channels, n))).astype(np.float32)


def _pieces(total: int, rng: np.random.Generator, largest: int) -> list[int]:
    sizes = [1, 1]  # a single sample (or frame) first, then random sizes
    while sum(sizes) < total:
        sizes.append(int(rng.integers(1, largest + 1)))
    sizes[-1] -= sum(sizes) - total
    return [s for s in sizes if s]


def test_one_version_for_the_package_the_library_its_header_cmake_project_and_soname(build, native):
    import same_edge

    version = (ROOT / "same_edge" / "VERSION").read_text().strip()
    major, minor, patch = (int(k) for k in version.split("."))
    assert same_edge.__version__ == version
    header = (build / "include" / "same_edge_version.h").read_text()
    assert [int(re.search(rf"#define SE_VERSION_{k} (\d+)", header).group(1)) for k in ("MAJOR", "MINOR", "PATCH")] == \
        [major, minor, patch]
    assert native.lib.se_version().decode() == version
    assert native.lib.se_version_number() == major * 10000 + minor * 100 + patch
    assert (build / f"libsame_edge.so.{version}").is_file()
    soname = subprocess.run(["objdump", "-p", str(build / "libsame_edge.so")], capture_output=True, text=True,
                            check=True).stdout
    assert re.search(rf"SONAME\s+libsame_edge\.so\.{major}\n", soname)  # 1.x keeps the ABI: one soname


def test_the_minimum_litert_version_is_the_same_in_c_and_in_pyproject(native):
    header = (ROOT / "native" / "include" / "same_edge.h").read_text()
    floor = re.search(r'#define SE_LITERT_MIN_VERSION "([\d.]+)"', header).group(1)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"ai-edge-litert>={floor},' in pyproject
    assert native.lib.se_litert_version().decode() == floor  # the wheel installed here is that release


def test_model_facts_match_the_python_runtime(pair):
    m, codec = pair
    lib = m.n.lib
    assert (lib.se_model_sample_rate(m.h), m.channels, m.dim, m.hop) == (codec.sample_rate, codec.channels, codec.latent_dim,
                                                                         codec.hop)
    assert lib.se_model_encoder_latency_samples(m.h) == codec.encoder_latency_samples
    assert lib.se_model_decoder_latency_samples(m.h) == codec.decoder_latency_samples
    assert lib.se_model_id(m.h).decode() == codec.manifest.model_id
    assert lib.se_model_threads(m.h) == codec.threads == THREADS


@pytest.mark.parametrize("layout", [PLANAR, INTERLEAVED])
def test_offline_encode_and_decode_are_bit_identical_to_python(pair, layout):
    m, codec = pair
    x = _audio(codec, codec.hop * 37 + 1234)  # several windows of every size, and an odd tail
    z = m.encode(x, layout)
    assert np.array_equal(z, codec.encode(x))
    assert np.array_equal(m.decode(z, layout), codec.decode(z))


@pytest.mark.parametrize("length_in_hops,extra", [(0, 1), (1, -1), (1, 0), (1, 1), (2, -1), (2, 0), (2, 1), (3, 1),
                                                 (8, -1), (8, 0), (8, 1)])
def test_odd_lengths_are_bit_identical_to_python(pair, length_in_hops, extra):
    m, codec = pair
    n = length_in_hops * codec.hop + extra  # 1 sample, k hops and k hops +- 1
    x = _audio(codec, n, seed=n)
    z = m.encode(x)
    assert z.shape == (codec.latent_dim, -(-n // codec.hop))
    assert np.array_equal(z, codec.encode(x))
    assert np.array_equal(m.decode(z), codec.decode(z))


@pytest.mark.parametrize("layout", [PLANAR, INTERLEAVED])
def test_streams_with_random_push_sizes_are_bit_identical_to_python(pair, layout):
    m, codec = pair
    rng = np.random.default_rng(7 + layout)
    x = _audio(codec, codec.hop * 11 + 777, seed=3)
    enc, py_enc = m.stream(decoder=False), codec.stream_encoder()
    z_parts, start = [], 0
    for size in _pieces(x.shape[1], rng, 3 * codec.hop):
        piece = x[:, start : start + size]
        start += size
        z_parts.append(enc.push(piece, layout))
        assert np.array_equal(z_parts[-1], py_enc.push(piece))  # the same output after every push
    z_parts.append(enc.flush(layout))
    assert np.array_equal(z_parts[-1], py_enc.flush())
    z = np.concatenate(z_parts, axis=1)
    assert np.array_equal(z, codec.encode(x))
    dec, py_dec = m.stream(decoder=True), codec.stream_decoder()
    y_parts, start = [], 0
    for size in _pieces(z.shape[1], rng, 5):
        piece = z[:, start : start + size]
        start += size
        y_parts.append(dec.push(piece, layout))
        assert np.array_equal(y_parts[-1], py_dec.push(piece))
    y_parts.append(dec.flush(layout))
    assert np.array_equal(y_parts[-1], py_dec.flush())
    assert np.array_equal(np.concatenate(y_parts, axis=1), codec.decode(z))
    enc.free()
    dec.free()


def test_a_reused_input_buffer_does_not_change_a_stream(pair):
    m, codec = pair
    x = _audio(codec, codec.hop * 6, seed=5)
    enc, buf, parts = m.stream(decoder=False), np.zeros((codec.channels, 1000), np.float32), []
    for start in range(0, x.shape[1], 1000):
        piece = x[:, start : start + 1000]
        buf[:, : piece.shape[1]] = piece
        parts.append(enc.push(buf[:, : piece.shape[1]]))
        buf[:] = 9.0  # the app refills its buffer: the stream must hold its own copy
    parts.append(enc.flush())
    assert np.array_equal(np.concatenate(parts, axis=1), codec.encode(x))
    enc.free()


def test_streams_on_several_threads_sharing_one_model_are_exact(pair):
    m, codec = pair
    x = _audio(codec, codec.hop * 9 + 55, seed=11)
    z_ref = codec.encode(x)
    y_ref = codec.decode(z_ref)
    results: dict[int, bool] = {}

    def work(k: int) -> None:
        rng = np.random.default_rng(k)
        enc, dec = m.stream(decoder=False), m.stream(decoder=True)  # a capture thread and a playback thread in one
        z_parts, y_parts, start = [], [], 0
        for size in _pieces(x.shape[1], rng, 2 * codec.hop):
            z = enc.push(x[:, start : start + size], INTERLEAVED if k % 2 else PLANAR)
            start += size
            z_parts.append(z)
            y_parts.append(dec.push(z))
        z_parts.append(enc.flush())
        y_parts += [dec.push(z_parts[-1]), dec.flush()]
        results[k] = (np.array_equal(np.concatenate(z_parts, axis=1), z_ref)
                      and np.array_equal(np.concatenate(y_parts, axis=1), y_ref))
        enc.free()
        dec.free()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: True for k in range(4)}


def test_a_weight_cache_dir_keeps_one_file_per_graph_shared_with_python_and_changes_no_output(native, tmp_path):
    codec = Codec.load(DEMO, threads=THREADS)
    audio = _audio(codec, 30_000)
    z_expected = codec.encode(audio)
    y_expected = codec.decode(z_expected)
    Codec.load(DEMO, threads=THREADS, sides=("decoder",), weight_cache_dir=tmp_path).close()  # Python fills one file
    for _ in range(2):  # the first open packs the encoder's weights, the second reuses both files
        m = Model(native, DEMO, weight_cache_dir=tmp_path)
        z = m.encode(audio)
        np.testing.assert_array_equal(z, z_expected)
        np.testing.assert_array_equal(m.decode(z), y_expected)
        m.close()
    manifest = json.loads((DEMO / "manifest.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{side}-{manifest[side]['sha256'][:16]}.xnn"
                                                         for side in ("decoder", "encoder")]


def test_a_replaced_export_never_runs_on_the_packed_weights_of_the_one_it_replaced_in_c(native, tmp_path):
    from graph_edit import move_weight

    model, cache = tmp_path / "model", tmp_path / "cache"
    shutil.copytree(DEMO, model, ignore=shutil.ignore_patterns("*.flac", "*.safetensors"))
    cache.mkdir()
    z = np.random.default_rng(0).normal(0, 1, (256, 20)).astype(np.float32)
    first = Model(native, model, weight_cache_dir=cache)
    first.decode(z)
    first.close()
    move_weight(model, "decoder", layer=0, delta=1e-2)  # the same graph layout, other weights
    expected = Codec.load(model, threads=THREADS).decode(z)
    m = Model(native, model, weight_cache_dir=cache)
    np.testing.assert_array_equal(m.decode(z), expected)
    m.close()


def test_a_weight_cache_dir_that_is_not_a_directory_is_refused_in_c(native, tmp_path):
    (tmp_path / "cache.xnn").write_bytes(b"")
    for path in (tmp_path / "cache.xnn", tmp_path / "missing"):
        status, message = _open_status(native, DEMO, weight_cache_dir=path)
        assert status == SE_ERR_ARGUMENT and "weight_cache_dir is not a directory" in message


# -- error paths: a status and a message, never a crash ------------------------------------------


def _open_status(native: Native, model_dir: Path, threads: int = 1, weight_cache_dir: Path | None = None) -> tuple[int, str]:
    options = ModelOptions()
    native.lib.se_model_options_init(ctypes.byref(options))
    options.threads = threads
    if weight_cache_dir is not None:
        options.weight_cache_dir = str(weight_cache_dir).encode()
    h = ctypes.c_void_p()
    status = native.lib.se_model_open(str(model_dir).encode(), ctypes.addressof(options), ctypes.byref(h))
    message = native.error() if status != SE_OK else ""
    native.lib.se_model_close(h)
    return status, message


def _damaged(tmp_path: Path, damage: str) -> Path:
    d = tmp_path / damage
    shutil.copytree(DEMO, d, ignore=shutil.ignore_patterns("*.flac", "*.safetensors", "*.md"))
    manifest = json.loads((d / "manifest.json").read_text())
    enc = d / "encoder.tflite"

    def rewrite() -> None:
        (d / "manifest.json").write_text(json.dumps(manifest))

    if damage == "no-manifest":
        (d / "manifest.json").unlink()
    elif damage == "not-json":
        (d / "manifest.json").write_text("{\"format\": ")
    elif damage == "deep-json":
        (d / "manifest.json").write_text("[" * 100000)
    elif damage == "wrong-format":
        manifest["format"] = "something-else"
        rewrite()
    elif damage == "old-version":
        manifest["format_version"] = 1
        rewrite()
    elif damage == "windows-zero":
        manifest["windows"] = [0]
        rewrite()
    elif damage == "windows-empty":
        manifest["windows"] = []
        rewrite()
    elif damage == "huge-start-skip":
        manifest["encoder"]["start_skip_frames"] = 10**6
        rewrite()
    elif damage == "negative-skip":
        manifest["decoder"]["start_skip_samples"] = -1
        rewrite()
    elif damage == "hop-string":
        manifest["model"]["hop"] = "4096"
        rewrite()
    elif damage == "missing-encoder":
        enc.unlink()
    elif damage.startswith("truncated-"):
        enc.write_bytes(enc.read_bytes()[: int(damage.split("-")[1])])
    elif damage == "flipped-byte":
        data = bytearray(enc.read_bytes())
        data[len(data) // 2] ^= 0xFF
        enc.write_bytes(bytes(data))
    elif damage == "graphs-swapped":  # a valid graph of the other side, recorded as this one's
        shutil.copy(d / "decoder.tflite", enc)
        manifest["encoder"]["bytes"] = enc.stat().st_size
        manifest["encoder"]["sha256"] = hashlib.sha256(enc.read_bytes()).hexdigest()
        rewrite()
    elif damage == "not-a-flatbuffer":
        enc.write_bytes(b"\0" * enc.stat().st_size)
        manifest["encoder"]["sha256"] = hashlib.sha256(enc.read_bytes()).hexdigest()
        rewrite()
    else:
        raise AssertionError(damage)
    return d


DAMAGES = ["no-manifest", "not-json", "deep-json", "wrong-format", "old-version", "windows-zero", "windows-empty",
           "huge-start-skip", "negative-skip", "hop-string", "missing-encoder", "truncated-64", "truncated-100000",
           "flipped-byte", "graphs-swapped", "not-a-flatbuffer"]
EXPECTED_WORDS = {"no-manifest": "manifest.json", "not-json": "not valid JSON", "deep-json": "nested too deeply",
                  "wrong-format": "format", "old-version": "format_version", "windows-zero": "windows",
                  "windows-empty": "windows", "huge-start-skip": "start_skip_frames", "negative-skip": "start_skip_samples",
                  "hop-string": "hop", "missing-encoder": "missing encoder.tflite", "truncated-64": "bytes",
                  "truncated-100000": "bytes", "flipped-byte": "sha256", "graphs-swapped": "does not match",
                  "not-a-flatbuffer": "flatbuffer"}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_model_directory_is_refused_with_a_message(native, tmp_path, damage):
    status, message = _open_status(native, _damaged(tmp_path, damage))
    assert status == SE_ERR_MODEL
    assert EXPECTED_WORDS[damage] in message and "\n" not in message


# A SAME-L manifest's damage -> the field both runtimes name.
SLIDING_DAMAGES = {
    "window-frames-with-chunked-attention": "model.window_frames",
    "attention-left-out": "model.window_frames",  # read as chunked: the window is out of place
    "unknown-attention": "model.attention",
    "two-frames-per-chunk": "model.frames_per_chunk",
    "state-of-another-window": "encoder.state_shape",
    "decoder-context": "decoder.context_shape",
    "start-skip-off-by-one": "encoder.start_skip_frames",
    "short-flush": "decoder.flush_samples",
    "flush-signature": "decoder.signatures",
    "first-flag": "encoder.signatures",
    "key-bias-of-another-window": "decoder.signatures",
}


@pytest.mark.parametrize("damage", SLIDING_DAMAGES)
def test_a_sliding_window_manifest_is_checked_as_python_checks_it(native, request, tmp_path, damage):
    """Both runtimes refuse it naming the same field: the host loop relies on each of them (the
    start skip and the padding at the flush are depth * window_frames frames)."""
    from same_edge.errors import ModelDirError
    from same_edge.manifest import read_manifest

    d = tmp_path / "model"
    shutil.copytree(_model_dir(request, "tiny-l-fp32"), d)
    manifest = json.loads((d / "manifest.json").read_text())
    model, enc, dec = manifest["model"], manifest["encoder"], manifest["decoder"]
    if damage == "window-frames-with-chunked-attention":
        model["attention"] = "chunked"
    elif damage == "attention-left-out":
        del model["attention"]
    elif damage == "unknown-attention":
        model["attention"] = "global"
    elif damage == "two-frames-per-chunk":
        model["frames_per_chunk"], model["chunk_samples"] = 2, 2 * model["hop"]
    elif damage == "state-of-another-window":
        enc["state_shape"][1] += 2
    elif damage == "decoder-context":
        dec["context_shape"] = [model["channels"], 1]
    elif damage == "start-skip-off-by-one":
        enc["start_skip_frames"] += 1
    elif damage == "short-flush":
        dec["flush_samples"] -= model["hop"]
    elif damage == "flush-signature":
        dec["signatures"]["decode_flush"] = {"inputs": {"state": dec["state_shape"]},
                                             "outputs": {"audio": [model["channels"], dec["flush_samples"]]}}
    elif damage == "key-bias-of-another-window":
        dec["signatures"]["decode_4"]["inputs"]["key_bias"][1] -= 1
    else:
        enc["signatures"]["encode_1"]["inputs"]["first"] = [1]
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match=re.escape(f"manifest field {SLIDING_DAMAGES[damage]}")):
        read_manifest(d)
    status, message = _open_status(native, d)
    assert status == SE_ERR_MODEL and f"manifest field {SLIDING_DAMAGES[damage]}" in message, message


def test_missing_directory_and_bad_threads_are_refused(native, tmp_path):
    assert _open_status(native, tmp_path / "nowhere")[0] == SE_ERR_MODEL
    assert _open_status(native, DEMO, threads=-1)[0] == SE_ERR_ARGUMENT
    assert _open_status(native, DEMO, threads=10**6)[0] == SE_ERR_ARGUMENT


def test_wrong_sizes_push_after_flush_and_null_pointers_give_a_status(native):
    m = Model(native, DEMO)
    lib, got = native.lib, ctypes.c_size_t()
    enc = m.stream(decoder=False)
    x = np.zeros((m.channels, 3 * m.hop), np.float32)
    out = np.zeros((m.dim, 8), np.float32)
    assert lib.se_stream_push(enc.h, x.ctypes.data, x.shape[1], PLANAR, out.ctypes.data, 0, ctypes.byref(got)) == \
        SE_ERR_BUFFER_TOO_SMALL
    assert lib.se_stream_push(enc.h, None, 5, PLANAR, out.ctypes.data, 8, ctypes.byref(got)) == SE_ERR_ARGUMENT
    assert lib.se_stream_push(enc.h, x.ctypes.data, 5, 9, out.ctypes.data, 8, ctypes.byref(got)) == SE_ERR_ARGUMENT
    assert lib.se_stream_push(enc.h, x.ctypes.data, 5, PLANAR, out.ctypes.data, 8, None) == SE_ERR_ARGUMENT
    x[0, 1] = np.nan
    assert lib.se_stream_push(enc.h, x.ctypes.data, 5, PLANAR, out.ctypes.data, 8, ctypes.byref(got)) == SE_ERR_ARGUMENT
    assert "NaN" in native.error()
    x[0, 1] = 0
    enc.push(x)  # the failed calls consumed nothing
    enc.flush()
    assert lib.se_stream_push(enc.h, x.ctypes.data, 5, PLANAR, out.ctypes.data, 8, ctypes.byref(got)) == SE_ERR_STATE
    assert "flushed" in native.error()
    assert lib.se_stream_push(None, x.ctypes.data, 5, PLANAR, out.ctypes.data, 8, ctypes.byref(got)) == SE_ERR_ARGUMENT
    assert lib.se_stream_flush(None, PLANAR, None, 0, ctypes.byref(got)) == SE_ERR_ARGUMENT
    assert lib.se_encode(None, None, 0, PLANAR, None, 0, ctypes.byref(got), None) == SE_ERR_ARGUMENT
    assert lib.se_encoder_create(m.h, -1, ctypes.byref(ctypes.c_void_p())) == SE_ERR_ARGUMENT
    enc.free()
    m.close()


def test_a_runtime_older_than_2_3_is_refused_with_a_clear_error(build, tmp_path):
    """A stand-in libLiteRt.so with every symbol the library uses except
    LiteRtCompiledModelIsNonCpuFullyAccelerated (new in LiteRT 2.3): opening a model says which
    version is needed."""
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(build / "libsame_edge.so")], capture_output=True,
                               text=True, check=True).stdout
    names = sorted({m for m in re.findall(r"\b(LiteRt\w+)", undefined) if m != "LiteRtCompiledModelIsNonCpuFullyAccelerated"})
    (tmp_path / "stub.c").write_text("".join(f"int {n}(void) {{ return 1; }}\n" for n in names))
    (tmp_path / "vers.map").write_text("VERS_1.0 { global: *; };\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(tmp_path / "libLiteRt.so"), str(tmp_path / "stub.c"),
                    "-Wl,-soname,libLiteRt.so", f"-Wl,--version-script={tmp_path / 'vers.map'}"], check=True)
    done = subprocess.run([str(build / "se_selftest"), "open", str(DEMO)], capture_output=True, text=True,
                          env={**os.environ, "LD_LIBRARY_PATH": str(tmp_path)})
    assert done.returncode == 3, done.stdout + done.stderr
    assert "SE_ERR_RUNTIME" in done.stdout and "older than 2.3" in done.stdout


# -- the C test programs, normal and under ASan + UBSan --------------------------------------------


def _sanitized_env() -> dict[str, str]:
    return {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=41",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=42"}


@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan-ubsan"])
def test_c_selftest_passes(request, model_dir, sanitized):
    tree = request.getfixturevalue("asan_build" if sanitized else "build")
    done = subprocess.run([str(tree / "se_selftest"), "check", str(model_dir)], capture_output=True, text=True,
                          env=_sanitized_env(), timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr[-4000:]


@pytest.mark.parametrize("damage", ["not-json", "deep-json", "truncated-64", "flipped-byte", "graphs-swapped",
                                    "windows-zero", "not-a-flatbuffer"])
def test_damaged_models_are_refused_cleanly_under_asan_and_ubsan(asan_build, tmp_path, damage):
    done = subprocess.run([str(asan_build / "se_selftest"), "open", str(_damaged(tmp_path, damage))], capture_output=True,
                          text=True, env=_sanitized_env(), timeout=300)
    assert done.returncode == 3 and done.stdout.startswith("SE_ERR_MODEL: "), done.stdout + done.stderr[-4000:]


# -- misuse and hostile files: a status, never a crash or a hang (each in a child process) -------

SANITIZED_C = pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan-ubsan"])


def _selftest(request, sanitized: bool, *args: str, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    tree = request.getfixturevalue("asan_build" if sanitized else "build")
    return subprocess.run([str(tree / "se_selftest"), *args], capture_output=True, text=True, env=_sanitized_env(),
                          timeout=timeout, **kwargs)


def _selftest_passes(request, sanitized: bool, *args: str) -> None:
    done = _selftest(request, sanitized, *args)
    assert done.returncode == 0 and done.stdout.strip() == "ok", f"exit {done.returncode}: {done.stderr[-4000:]}"


def _model_copy(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    shutil.copytree(DEMO, d, ignore=shutil.ignore_patterns("*.flac", "*.safetensors", "*.md"))
    return d


@SANITIZED_C
def test_graph_files_replaced_in_place_while_a_model_runs_change_no_output_and_crash_nothing(request, tmp_path, sanitized):
    """Truncated, then rewritten with other bytes, as `cp new.tflite` over them: a mapped graph
    would kill the process with SIGBUS (exit -7) on its next run."""
    _selftest_passes(request, sanitized, "replace", str(_model_copy(tmp_path)))


@SANITIZED_C
def test_one_stream_pushed_from_two_threads_at_once_refuses_one_call_with_a_state_error(request, sanitized):
    _selftest_passes(request, sanitized, "two-threads", str(DEMO))


@SANITIZED_C
def test_a_stream_keeps_its_closed_model_alive_and_the_last_stream_frees_it(request, sanitized):
    _selftest_passes(request, sanitized, "close-with-stream", str(DEMO))


@SANITIZED_C
def test_an_older_smaller_options_struct_works_zero_is_the_defaults_and_unknown_newer_fields_are_refused(request,
                                                                                                      sanitized):
    _selftest_passes(request, sanitized, "abi", str(DEMO))


@SANITIZED_C
def test_a_model_opened_from_memory_or_file_ranges_equals_the_directory_and_refuses_the_same_damage(request, tmp_path,
                                                                                                   sanitized):
    _selftest_passes(request, sanitized, "sources", str(DEMO), str(tmp_path / "packed.apk"))


@SANITIZED_C
def test_a_reset_stream_gives_what_a_new_stream_gives_mid_stream_and_after_a_flush(request, sanitized):
    _selftest_passes(request, sanitized, "reset", str(DEMO))


@SANITIZED_C
def test_log_abort_and_progress_callbacks(request, sanitized):
    _selftest_passes(request, sanitized, "callbacks", str(DEMO))


@SANITIZED_C
def test_each_thread_reads_its_own_error_message(request, sanitized):
    _selftest_passes(request, sanitized, "errors-per-thread")


@pytest.mark.parametrize("model", MODELS)
def test_streams_reset_between_songs_are_bit_identical_to_python(native, request, model):
    model_dir = _model_dir(request, model)
    m, codec = Model(native, model_dir), Codec.load(model_dir, threads=THREADS)
    rng = np.random.default_rng(5)
    enc, dec = m.stream(decoder=False), m.stream(decoder=True)
    for song in range(3):
        x = _audio(codec, int(rng.integers(1, 9 * codec.hop)), seed=song)
        z = np.concatenate([enc.push(x[:, :4321]), enc.push(x[:, 4321:]), enc.flush()], axis=1)
        np.testing.assert_array_equal(z, codec.encode(x))
        y = np.concatenate([dec.push(z), dec.flush()], axis=1)
        np.testing.assert_array_equal(y, codec.decode(z))
        enc.reset(), dec.reset()
    enc.free(), dec.free()
    m.close(), codec.close()


@SANITIZED_C
def test_output_sizes_that_overflow_are_size_max_and_such_pushes_are_refused(request, sanitized):
    _selftest_passes(request, sanitized, "sizes", str(DEMO))


@pytest.mark.parametrize("name", ["manifest.json", "encoder.tflite", "decoder.tflite"])
def test_a_fifo_in_place_of_a_model_file_is_refused_at_once(request, tmp_path, name):
    """Opening a FIFO for reading waits for a writer: forever, in a model directory."""
    d = _model_copy(tmp_path)
    (d / name).unlink()
    os.mkfifo(d / name)
    done = _selftest(request, False, "open", str(d), timeout=30)
    assert done.returncode == 3 and done.stdout.startswith("SE_ERR_MODEL: ") and name in done.stdout, done.stdout


def _file_size_limit(limit: int):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


@SANITIZED_C
@pytest.mark.parametrize("cache", ["in-memory", "directory"])
def test_under_a_file_size_limit_graphs_open_without_a_file_backed_weight_cache(request, tmp_path, sanitized, cache):
    """XNNPACK packs the demo's weights into 2.2 and 2.5 MB: a cache file (or memfd) under a 1 MB
    limit would die of SIGXFSZ (exit -25) or fail inside XNNPACK."""
    folder = tmp_path / "cache"
    folder.mkdir()
    args = ["open", str(DEMO)] + ([str(folder)] if cache == "directory" else [])
    done = _selftest(request, sanitized, *args, preexec_fn=_file_size_limit(1 << 20))
    assert done.returncode == 0 and done.stdout.startswith("SE_OK"), f"exit {done.returncode}: {done.stdout}"
    assert list(folder.iterdir()) == []


def test_a_finite_file_size_limit_changes_no_output(build, song, tmp_path):
    """Without the weight cache each signature packs its own copy of the weights: more memory, the
    same numbers."""
    outputs = []
    for limit in (None, 1 << 30):
        out = tmp_path / f"limit-{limit}.wav"
        done = subprocess.run([str(build / "same-edge-native"), "roundtrip", str(song), str(out), "--model", str(DEMO),
                               "--threads", str(THREADS)], capture_output=True, text=True, timeout=300,
                              preexec_fn=_file_size_limit(limit) if limit else None)
        assert done.returncode == 0, done.stderr
        outputs.append(_without_peak_time(out.read_bytes()))
    assert outputs[0] == outputs[1]


@SANITIZED_C
def test_an_empty_cpp_stream_throws_instead_of_dividing_by_zero_and_a_cpp_model_moves_by_assignment(request, tmp_path,
                                                                                                   sanitized):
    tree = request.getfixturevalue("asan_build" if sanitized else "build")
    exe = tmp_path / "wrapper_check"
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-g"] if sanitized else []
    subprocess.run(["c++", "-std=c++20", "-Wall", "-Werror", *flags, "-o", str(exe),
                    str(ROOT / "native" / "tests" / "wrapper_check.cpp"), f"-I{tree / 'include'}", f"-L{tree}",
                    "-lsame_edge", f"-Wl,-rpath,{tree}", f"-Wl,-rpath,{_litert_library().parent}"],
                   check=True, capture_output=True)
    done = subprocess.run([str(exe), str(DEMO)], capture_output=True, text=True, env=_sanitized_env(), timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", f"exit {done.returncode}: {done.stderr[-4000:]}"


def test_push_and_flush_make_no_allocation_in_the_library(build, model_dir):
    done = subprocess.run([str(build / "se_alloc_count"), str(model_dir), str(THREADS)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = dict(kv.split("=") for kv in done.stdout.split())
    assert counts["library_allocs"] == "0" and counts["statuses_ok"] == "1"


def _doc_block(language: str, marker: str) -> str:
    text = (ROOT / "docs" / "EMBEDDING.md").read_text()
    blocks = [b for b in re.findall(rf"```{language}\n(.*?)```", text, re.S) if marker in b]
    assert len(blocks) == 1, f"docs/EMBEDDING.md should hold one {language} block with {marker!r}"
    return blocks[0]


@pytest.mark.parametrize("language,compiler,suffix", [("c", "cc", ".c"), ("cpp", "c++", ".cpp")])
def test_the_streaming_examples_in_the_docs_compile_and_run(build, tmp_path, language, compiler, suffix):
    source = tmp_path / f"example{suffix}"
    source.write_text(_doc_block(language, "int main"))
    exe = tmp_path / "example"
    std = ["-std=c11"] if language == "c" else ["-std=c++20"]
    subprocess.run([compiler, *std, "-Wall", "-Werror", "-o", str(exe), str(source), f"-I{build / 'include'}",
                    f"-L{build}", "-lsame_edge", f"-Wl,-rpath,{build}", f"-Wl,-rpath,{_litert_library().parent}"],
                   check=True, capture_output=True)
    done = subprocess.run([str(exe), str(DEMO)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "frames in" in done.stdout


def test_the_header_opens_with_a_streaming_example_that_compiles_and_runs(build, tmp_path):
    header = (ROOT / "native" / "include" / "same_edge.h").read_text()
    example = re.search(r" \* example-begin\n(.*?) \* example-end\n", header, re.S).group(1)
    source = tmp_path / "example.c"
    source.write_text("".join(line[5:] + "\n" for line in example.splitlines()))
    exe = tmp_path / "example"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(source), f"-I{build / 'include'}",
                    f"-L{build}", "-lsame_edge", f"-Wl,-rpath,{build}", f"-Wl,-rpath,{_litert_library().parent}"],
                   check=True, capture_output=True)
    codec = Codec.load(DEMO, threads=2)
    x = _audio(codec, 3 * codec.hop + 1234)
    (tmp_path / "audio.f32").write_bytes(np.ascontiguousarray(x.T).tobytes())
    done = subprocess.run([str(exe), str(DEMO), str(tmp_path / "audio.f32")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [str(4), "latent", "frames,", str(4 * codec.hop), "samples"]
    missing = subprocess.run([str(exe), str(tmp_path / "nowhere"), str(tmp_path / "audio.f32")], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "model directory not found" in missing.stderr


@pytest.mark.parametrize("language,compiler,std", [("c", "cc", "-std=c11"), ("c++", "c++", "-std=c++20")])
def test_the_headers_compile_warning_free_in_c11_and_cpp20_and_a_deprecated_call_warns(build, tmp_path, language,
                                                                                     compiler, std):
    include = "same_edge.hpp" if language == "c++" else "same_edge.h"
    source = tmp_path / ("check.cpp" if language == "c++" else "check.c")
    source.write_text(f'#include "{include}"\nint main(void) {{ return se_version_number() > 0 ? 0 : 1; }}\n')
    flags = [compiler, std, "-Wall", "-Wextra", "-Wpedantic", "-Werror", f"-I{build / 'include'}", "-c", "-o",
             str(tmp_path / "check.o")]
    done = subprocess.run([*flags, str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    source.write_text(f'#include "{include}"\nint main(void) {{ return se_model_error(0)[0]; }}\n')
    done = subprocess.run([*flags, str(source)], capture_output=True, text=True)
    assert done.returncode != 0 and "use se_last_error()" in done.stderr  # -Werror=deprecated-declarations


# -- same-edge-native ----------------------------------------------------------------------------


def _cli(build: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(build / "same-edge-native"), *args, "--threads", str(THREADS)], capture_output=True,
                          text=True, timeout=600)


def _compared_cli(request, sanitized: bool, *args: str) -> subprocess.CompletedProcess:
    """same-edge-native for a comparison with Python: built plainly with MALLOC_PERTURB_ (glibc
    fills new and freed memory with its byte) or with ASan and UBSan (every byte of a new block
    filled, not its first 4 KB), so that a frame left from the heap shows."""
    tree = request.getfixturevalue("asan_build" if sanitized else "build")
    env = _sanitized_env() if sanitized else {**os.environ, "MALLOC_PERTURB_": "165"}
    if sanitized:
        env["ASAN_OPTIONS"] += ":max_malloc_fill_size=1073741824"
    return subprocess.run([str(tree / "same-edge-native"), *args], capture_output=True, text=True, env=env, timeout=600)


def _python_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "same_edge", *args, "--threads", str(THREADS)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("song") / "song.wav"
    codec_rate = 44100
    n = int(9.3 * codec_rate)
    t = np.arange(n) / codec_rate
    x = np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 440 * t + 1)], axis=1)
    sf.write(path, x.astype(np.float32), codec_rate, subtype="PCM_16")
    return path


def test_native_roundtrip_writes_the_same_wav_as_python(build, song, tmp_path):
    native_out, python_out = tmp_path / "native.wav", tmp_path / "python.wav"
    done = _cli(build, "roundtrip", str(song), str(native_out), "--model", str(DEMO))
    assert done.returncode == 0, done.stderr
    assert _python_cli("roundtrip", str(song), str(python_out), "--model", str(DEMO)).returncode == 0
    a, rate_a = sf.read(native_out, dtype="float32")
    b, rate_b = sf.read(python_out, dtype="float32")
    assert rate_a == rate_b == 44100 and np.array_equal(a, b)
    assert sf.info(str(native_out)).subtype == "FLOAT"
    # The file itself, header included, but for libsndfile's PEAK chunk timestamp (the time of writing).
    assert _without_peak_time(native_out.read_bytes()) == _without_peak_time(python_out.read_bytes())


def _without_peak_time(wav: bytes) -> bytes:
    at = wav.find(b"PEAK")
    assert at > 0
    return wav[: at + 12] + wav[at + 16 :]  # "PEAK", chunk size, version, then the 4-byte timestamp


def test_native_latent_files_are_read_by_python_and_python_ones_by_native(build, song, tmp_path):
    from same_edge.latents import LatentReader

    native_z, python_z = tmp_path / "native.npz", tmp_path / "python.npz"
    assert _cli(build, "encode", str(song), str(native_z), "--model", str(DEMO)).returncode == 0
    assert _python_cli("encode", str(song), str(python_z), "--model", str(DEMO)).returncode == 0
    with LatentReader(native_z) as a, LatentReader(python_z) as b:
        assert a.header == b.header
        za = np.concatenate(list(a.blocks(64)), axis=1)
        zb = np.concatenate(list(b.blocks(64)), axis=1)
    assert np.array_equal(za, zb)
    native_y, python_y = tmp_path / "native.wav", tmp_path / "python.wav"
    assert _cli(build, "decode", str(python_z), str(native_y), "--model", str(DEMO)).returncode == 0
    assert _python_cli("decode", str(native_z), str(python_y), "--model", str(DEMO)).returncode == 0
    assert np.array_equal(sf.read(native_y, dtype="float32")[0], sf.read(python_y, dtype="float32")[0])


def test_both_command_lines_write_the_format_version_and_refuse_a_newer_one_by_name(build, song, tmp_path):
    """Files from before the field read as version 1 in both; a newer version is one line and exit 2."""
    import io
    import zipfile

    from same_edge.latents import FORMAT_VERSION, VERSION_MEMBER

    native_z = tmp_path / "native.npz"
    assert _cli(build, "encode", str(song), str(native_z), "--model", str(DEMO)).returncode == 0
    with zipfile.ZipFile(native_z) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    assert np.load(native_z)["format_version"] == FORMAT_VERSION
    newer, older = tmp_path / "newer.npz", tmp_path / "older.npz"
    version = io.BytesIO()
    np.save(version, np.int64(FORMAT_VERSION + 1))
    with zipfile.ZipFile(newer, "w") as a, zipfile.ZipFile(older, "w") as b:
        for name, data in members.items():
            a.writestr(name, version.getvalue() if name == VERSION_MEMBER else data)
            if name != VERSION_MEMBER:
                b.writestr(name, data)
    for run in (lambda *a: _cli(build, *a), _python_cli):
        refused = run("decode", str(newer), str(tmp_path / "x.wav"), "--model", str(DEMO))
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
        assert f"format version {FORMAT_VERSION + 1}, written by a newer same-edge" in refused.stderr
        assert not (tmp_path / "x.wav").exists()
        assert run("decode", str(older), str(tmp_path / "old.wav"), "--model", str(DEMO)).returncode == 0


def test_native_stream_prints_block_timing_and_latency(build, song, tmp_path):
    done = _cli(build, "stream", str(song), str(tmp_path / "out.wav"), "--model", str(DEMO))
    assert done.returncode == 0, done.stderr
    assert re.search(r"compute per block: p50 [\d.]+ ms, p99 [\d.]+ ms", done.stdout)
    assert "algorithmic latency: 279 ms encoder + " in done.stdout
    out = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    assert out.shape == sf.read(song, dtype="float32")[0].shape


def test_native_keep_rate_writes_the_same_audio_as_python(build, tmp_path):
    rate = 48000
    t = np.arange(int(4.3 * rate)) / rate
    song48 = tmp_path / "song48.wav"
    sf.write(song48, np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 440 * t + 1)], axis=1),
             rate, subtype="PCM_16")
    latents = tmp_path / "z.npz"
    assert _cli(build, "encode", str(song48), str(latents), "--model", str(DEMO)).returncode == 0
    for command, source in (("roundtrip", song48), ("decode", latents)):
        native_out, python_out = tmp_path / f"native-{command}.wav", tmp_path / f"python-{command}.wav"
        done = _cli(build, command, str(source), str(native_out), "--model", str(DEMO), "--keep-rate")
        assert done.returncode == 0, done.stderr
        done = _python_cli(command, str(source), str(python_out), "--model", str(DEMO), "--keep-rate")
        assert done.returncode == 0, done.stderr
        a, rate_a = sf.read(native_out, dtype="float32")
        b, rate_b = sf.read(python_out, dtype="float32")
        assert rate_a == rate_b == rate and a.shape == b.shape == (len(t), 2) and np.array_equal(a, b)


# Lengths: 1 sample to 300,000, every boundary of a hop (4096) and a chunk (8192) +-1 up to ten
# hops (past that the stream driver's buffers repeat with the chunk), the reader's 4-s block
# (176,400) +-1, and the lengths the growth bug showed at. Blocks: <= 8192, and not multiples of a hop.
# Under ASan, whose model open takes a second, the lengths of GRID_ASAN_LENGTHS.
GRID_LENGTHS = sorted({1, 2, 5000, 30000, 44100, 60000, 150000, 176399, 176400, 176401, 200000, 300000}
                      | {k * 4096 + d for k in range(1, 11) for d in (-1, 0, 1)})
GRID_ASAN_LENGTHS = {1, 4097, 8192, 30000, 44100, 176401, 300000}
GRID_BLOCKS = (1000, 4095, 4097, 8192, 8193, 10000)
GRID_THREADS = 1  # both sides; two CLIs run at once


def _grid_cases(sanitized: bool = False) -> list[tuple[str, int, int | None]]:
    cases = [("roundtrip", n, None) for n in GRID_LENGTHS]
    cases += [("stream", n, None) for n in GRID_LENGTHS if n not in (176399, 176400, 176401)]
    cases += [("stream", n, b) for n in (44100, 60000) for b in GRID_BLOCKS]
    return [c for c in cases if c[1] in GRID_ASAN_LENGTHS] if sanitized else cases


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, dict]:
    """The grid's inputs (float WAV) and the Python runtime's outputs for each case, computed in
    this process: what `same-edge stream` calls, and `same-edge roundtrip`'s calls without its
    quality meter (most of its time; it does not touch the output)."""
    from same_edge.audio import AudioReader, AudioWriter
    from same_edge.files import stream_file, stream_through

    d = tmp_path_factory.mktemp("grid")
    rng = np.random.default_rng(0)
    for n in GRID_LENGTHS:
        t = np.arange(n) / 44100
        x = 0.2 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))
        sf.write(d / f"{n}.wav", x.astype(np.float32), 44100, subtype="FLOAT")
    expected, codec = {}, Codec.load(DEMO, threads=GRID_THREADS)
    for command, n, block in _grid_cases():
        out = d / "python.wav"
        if command == "roundtrip":
            with AudioWriter(out, codec.sample_rate, codec.channels) as writer:
                reader = AudioReader(d / f"{n}.wav", codec.sample_rate, codec.channels)
                stream_through(codec, reader.blocks(), writer, largest_window=None)
        else:
            stream_file(codec, d / f"{n}.wav", out, block=block)
        expected[command, n, block] = sf.read(out, dtype="float32")[0]
    codec.close()
    return d, expected


SANITIZED = pytest.mark.parametrize("sanitized", [False, True], ids=["malloc-perturb", "asan-ubsan"])


@SANITIZED
def test_native_roundtrip_and_stream_equal_python_at_every_length_and_block(request, grid, sanitized):
    """Every output frame is computed; none is left from the heap (where the stream driver once
    grew its buffer without keeping the frames it held)."""
    from concurrent.futures import ThreadPoolExecutor

    d, expected = grid
    request.getfixturevalue("asan_build" if sanitized else "build")  # built before the threads start

    def run(case: tuple[str, int, int | None]) -> str | None:
        command, n, block = case
        out = d / f"native-{'asan' if sanitized else 'plain'}-{command}-{n}-{block}.wav"
        done = _compared_cli(request, sanitized, command, str(d / f"{n}.wav"), str(out), "--model", str(DEMO),
                             "--threads", str(GRID_THREADS), *(["--block", str(block)] if block else []))
        if done.returncode != 0:
            return f"{case}: exit {done.returncode}: {done.stderr[-2000:]}"
        y, want = sf.read(out, dtype="float32")[0], expected[case]
        out.unlink()
        if y.shape != want.shape:
            return f"{case}: {y.shape} frames, Python {want.shape}"
        wrong = np.flatnonzero((y != want).any(axis=1))
        return f"{case}: {len(wrong)} frames differ from {wrong[0]}" if len(wrong) else None

    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(run, _grid_cases(sanitized)) if f]
    assert not failures, "\n".join(failures)


@SANITIZED
@pytest.mark.parametrize("command", ["roundtrip", "stream", "decode-keep-rate"])
def test_native_flac_output_is_bit_identical_to_python(request, song, tmp_path, command, sanitized):
    """The native CLI rounds FLAC's 24-bit samples itself, as the soundfile wheel's libsndfile
    (1.2.2) does: Debian's libsndfile 1.2.0 would put 8% of them one step away."""
    from same_edge.files import decode_file, encode_file, roundtrip_file, stream_file

    native_out, python_out = tmp_path / "native.flac", tmp_path / "python.flac"
    codec = Codec.load(DEMO, threads=THREADS)
    if command == "decode-keep-rate":  # and through the resampler
        rate, latents = 48000, tmp_path / "z.npz"
        sf.write(tmp_path / "song48.wav", sf.read(song, dtype="float32")[0][: 3 * rate], rate, subtype="FLOAT")
        encode_file(codec, tmp_path / "song48.wav", latents)
        decode_file(codec, latents, python_out, keep_rate=True)
        args = ["decode", str(latents), str(native_out), "--keep-rate"]
    else:
        (roundtrip_file if command == "roundtrip" else stream_file)(codec, song, python_out)
        args = [command, str(song), str(native_out)]
    codec.close()
    done = _compared_cli(request, sanitized, *args, "--model", str(DEMO), "--threads", str(THREADS))
    assert done.returncode == 0, done.stderr
    assert sf.info(str(native_out)).subtype == sf.info(str(python_out)).subtype == "PCM_24"
    a, b = sf.read(native_out, dtype="int32")[0], sf.read(python_out, dtype="int32")[0]
    assert a.shape == b.shape
    assert np.count_nonzero(a != b) == 0, f"{np.count_nonzero(a != b)} of {a.size} samples differ"


class _SfInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int), ("channels", ctypes.c_int),
                ("format", ctypes.c_int), ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


def _read_with_native_libsndfile(build: Path, path: Path) -> tuple[np.ndarray, int]:
    """A file as same-edge-native reads it: through the libsndfile it links (Debian's), not the
    soundfile wheel's."""
    ldd = subprocess.run(["ldd", str(build / "same-edge-native")], capture_output=True, text=True, check=True).stdout
    lib = ctypes.CDLL(re.search(r"libsndfile\.so\.1 => (\S+)", ldd).group(1))
    lib.sf_open.restype, lib.sf_open.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(_SfInfo)]
    lib.sf_readf_float.restype = ctypes.c_int64
    lib.sf_readf_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]
    info = _SfInfo()
    f = lib.sf_open(str(path).encode(), 0x10, ctypes.byref(info))  # SFM_READ
    assert f, path
    x = np.zeros((info.frames, info.channels), np.float32)
    assert lib.sf_readf_float(f, x.ctypes.data, info.frames) == info.frames
    lib.sf_close(f)
    return x, info.samplerate


INPUTS = {"wav": ("WAV", "PCM_16", 44100), "flac": ("FLAC", "PCM_24", 44100), "opus": ("OGG", "OPUS", 48000),
          "mp3": ("MP3", "MPEG_LAYER_III", 44100), "ogg": ("OGG", "VORBIS", 44100)}


@SANITIZED
@pytest.mark.parametrize("kind", list(INPUTS))
def test_native_latents_equal_python_for_every_input_but_ogg_vorbis_which_decodes_differently(request, song, tmp_path,
                                                                                              kind, sanitized):
    """Bit for bit from WAV, FLAC, Opus and MP3 files. An Ogg Vorbis file decodes differently in
    Debian's libsndfile 1.2.0 (and libvorbis 1.3.7) and in the soundfile wheel's 1.2.2 (and the
    libvorbis it bundles), by under 1e-6 per sample; the latents differ by exactly what that
    makes: the native ones are the Python runtime's of the audio as Debian decodes it."""
    from same_edge.files import encode_file
    from same_edge.latents import LatentReader

    fmt, subtype, rate = INPUTS[kind]
    source = tmp_path / f"song.{kind}"
    x = sf.read(song, dtype="float32")[0][: 3 * 44100]
    sf.write(source, x, rate, format=fmt, subtype=subtype)
    native_z, python_z = tmp_path / "native.npz", tmp_path / "python.npz"
    done = _compared_cli(request, sanitized, "encode", str(source), str(native_z), "--model", str(DEMO), "--threads",
                         str(THREADS))
    assert done.returncode == 0, done.stderr
    as_native_reads, native_rate = _read_with_native_libsndfile(request.getfixturevalue("build"), source)
    as_python_reads = sf.read(source, dtype="float32")[0]
    assert native_rate == rate and as_native_reads.shape == as_python_reads.shape
    if kind == "ogg":
        assert np.abs(as_native_reads - as_python_reads).max() < 1e-6
        source = tmp_path / "as-native-reads.wav"  # what the Python runtime makes of Debian's decoding
        sf.write(source, as_native_reads, rate, subtype="FLOAT")
    else:
        assert np.array_equal(as_native_reads, as_python_reads)
    codec = Codec.load(DEMO, threads=THREADS)
    encode_file(codec, source, python_z)
    codec.close()
    with LatentReader(native_z) as a, LatentReader(python_z) as b:
        assert a.header.length == b.header.length
        za, zb = (np.concatenate(list(r.blocks(64)), axis=1) for r in (a, b))
    assert np.array_equal(za, zb)


@SANITIZED
@pytest.mark.parametrize("channels", [6, 8, 130])
def test_native_downmix_is_bit_identical_to_python(request, tmp_path, channels, sanitized):
    """--downmix averages in numpy's order (pairwise from 8 channels on), not in sequence."""
    from same_edge.files import encode_file
    from same_edge.latents import LatentReader

    source, native_z, python_z = tmp_path / "many.wav", tmp_path / "native.npz", tmp_path / "python.npz"
    rng = np.random.default_rng(channels)
    sf.write(source, (0.1 * rng.standard_normal((2 * 44100, channels))).astype(np.float32), 44100, subtype="FLOAT")
    done = _compared_cli(request, sanitized, "encode", str(source), str(native_z), "--model", str(DEMO), "--downmix",
                         "--threads", str(THREADS))
    assert done.returncode == 0, done.stderr
    codec = Codec.load(DEMO, threads=THREADS)
    encode_file(codec, source, python_z, downmix=True)
    codec.close()
    with LatentReader(native_z) as a, LatentReader(python_z) as b:
        assert np.array_equal(np.concatenate(list(a.blocks(64)), axis=1), np.concatenate(list(b.blocks(64)), axis=1))


@pytest.mark.parametrize("case", ["missing-input", "empty-input", "not-audio", "bad-extension", "bad-threads",
                                  "bad-model", "bad-latents", "implausible-rate", "flac-cannot-store-the-rate",
                                  "keep-rate-on-stream"])
def test_native_cli_bad_input_is_one_line_exit_2_and_no_file(build, song, tmp_path, case):
    out = tmp_path / "out.wav"
    args = ["roundtrip", str(song), str(out), "--model", str(DEMO)]
    if case == "missing-input":
        args[1] = str(tmp_path / "nothing.wav")
    elif case == "empty-input":
        (tmp_path / "empty.wav").write_bytes(b"")
        args[1] = str(tmp_path / "empty.wav")
    elif case == "not-audio":
        (tmp_path / "text.wav").write_text("not audio at all")
        args[1] = str(tmp_path / "text.wav")
    elif case == "bad-extension":
        out = tmp_path / "out.mp4"
        args[2] = str(out)
    elif case == "bad-threads":
        args += ["--threads", "0"]
    elif case == "bad-model":
        args[4] = str(tmp_path)
    elif case == "bad-latents":
        (tmp_path / "z.npz").write_bytes(b"PK\x05\x06" + b"\0" * 18)
        args = ["decode", str(tmp_path / "z.npz"), str(out), "--model", str(DEMO)]
    elif case == "implausible-rate":  # a damaged header: as the Python CLI, refused before any work
        sf.write(tmp_path / "slow.wav", np.zeros((400, 2), np.float32), 500)
        args[1] = str(tmp_path / "slow.wav")
    elif case == "flac-cannot-store-the-rate":
        sf.write(tmp_path / "fast.wav", np.zeros((7000, 2), np.float32), 700000)
        out = tmp_path / "out.flac"
        args[1:3] = [str(tmp_path / "fast.wav"), str(out)]
        args.append("--keep-rate")
    elif case == "keep-rate-on-stream":
        args = ["stream", str(song), str(out), "--model", str(DEMO), "--keep-rate"]
    done = subprocess.run([str(build / "same-edge-native"), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("same-edge-native: error: ")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))) == []


def test_native_cli_writing_past_a_file_size_limit_under_asan_is_one_line_exit_2_and_no_file(asan_build, song, tmp_path):
    """Past `ulimit -f` a write is EFBIG once SIGXFSZ is ignored (its default kills the process
    silently, exit -25, and leaves the temporary output behind)."""
    out = tmp_path / "out.wav"  # 3.3 MB of float WAV, past the 3 MB limit; the graphs open under it
    done = subprocess.run([str(asan_build / "same-edge-native"), "roundtrip", str(song), str(out), "--model", str(DEMO),
                           "--threads", str(THREADS)], capture_output=True, text=True, env=_sanitized_env(), timeout=300,
                          preexec_fn=_file_size_limit(3 << 20))
    assert done.returncode == 2, f"exit {done.returncode}: {done.stderr[-4000:]}"
    assert done.stderr.startswith("same-edge-native: error: cannot write ") and len(done.stderr.splitlines()) == 1
    assert "File too large" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_native_benchmark_runs(build):
    import native as bench

    rows = bench.measure(DEMO, threads=THREADS, calls=6, minutes=(), build_dir=build)
    assert rows["native"]["encoder_p50_ms"] > 0 and rows["python"]["encoder_p50_ms"] > 0
