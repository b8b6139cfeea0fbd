"""A model directory is checked before LiteRT sees it: damaged, mismatched or malformed files are
refused with ModelDirError naming the problem, never a crashed process or silently wrong output."""

import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from graph_edit import move_weight
from same_edge import Codec, ConfigError, ModelDirError, StreamError
from same_edge.flatbuffer import GraphFileError, verify_tflite
from same_edge.manifest import Manifest, read_manifest
from same_edge.models import DEMO_MODEL_DIR


@pytest.fixture
def model_copy(tmp_path):
    dst = tmp_path / "model"
    dst.mkdir()
    for name in ("manifest.json", "encoder.tflite", "decoder.tflite"):
        shutil.copy(DEMO_MODEL_DIR / name, dst / name)
    return dst


def _load_in_child(model_dir, *extra: str) -> subprocess.CompletedProcess:
    """Load in a fresh process: a crash there shows as a signal exit status, not a dead test run."""
    code = ("import sys; from same_edge import Codec, ModelDirError\n"
            "try:\n"
            f"    Codec.load(sys.argv[1]{''.join(extra)}).encode(__import__('numpy').zeros((2, 9000), 'float32'))\n"
            "except ModelDirError as e:\n"
            "    print(e); sys.exit(2)\n")
    return subprocess.run([sys.executable, "-c", code, str(model_dir)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("size", [64, 1000, 4096, 100_000])
def test_a_truncated_graph_is_refused_by_its_size_without_crashing(model_copy, size):
    graph = model_copy / "encoder.tflite"
    graph.write_bytes(graph.read_bytes()[:size])
    result = _load_in_child(model_copy)
    assert result.returncode == 2 and "manifest says" in result.stdout, result


def test_a_graph_with_flipped_bytes_is_refused_by_its_hash(model_copy):
    graph = model_copy / "encoder.tflite"
    data = bytearray(graph.read_bytes())
    for i in range(1000, len(data), 50_000):  # weights and structure alike
        data[i] ^= 0x5A
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="sha256"):
        Codec.load(model_copy, sides=("encoder",))


@pytest.mark.parametrize("seed", range(6))
def test_a_damaged_graph_that_skips_the_hash_check_never_crashes_the_process(model_copy, seed):
    """With verify=False only the structure stands between the bytes and LiteRT: flipped bytes in
    the flatbuffer's tables (not its weights) must give an error or a load, never a signal."""
    graph = model_copy / "decoder.tflite"
    data = bytearray(graph.read_bytes())
    rng = np.random.default_rng(seed)
    for i in rng.integers(0, 20_000, 40):  # the tables sit at the start of the file
        data[i] = rng.integers(0, 256)
    graph.write_bytes(bytes(data))
    result = _load_in_child(model_copy, ", verify=False")
    assert result.returncode in (0, 1, 2) and result.returncode >= 0, result


def test_the_structural_check_refuses_what_is_not_a_tflite_flatbuffer():
    data = (DEMO_MODEL_DIR / "encoder.tflite").read_bytes()
    verify_tflite(data)
    for bad in (b"", data[:7], b"xxxxTFL3" + data[8:], data[:4] + b"ABCD" + data[8:], data[:20_000]):
        with pytest.raises(GraphFileError):
            verify_tflite(bad)


def test_a_graph_of_another_model_is_refused(model_copy):
    shutil.copy(DEMO_MODEL_DIR / "decoder.tflite", model_copy / "encoder.tflite")
    with pytest.raises(ModelDirError, match="manifest says|sha256"):
        Codec.load(model_copy)


def _manifest(model_copy) -> dict:
    return json.loads((model_copy / "manifest.json").read_text())


def _write(model_copy, raw) -> None:
    (model_copy / "manifest.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(("edit", "field"), [
    (lambda m: m.update(windows=[0]), "windows"),
    (lambda m: m.update(windows=[]), "windows"),
    (lambda m: m.update(windows=[4, 1]), "windows"),
    (lambda m: m.update(windows=[1, 1, 4]), "windows"),
    (lambda m: m["encoder"].update(start_skip_frames=10**9), "encoder.start_skip_frames"),
    (lambda m: m["decoder"].update(start_skip_samples=-1), "decoder.start_skip_samples"),
    (lambda m: m["model"].update(hop=0), "model.hop"),
    (lambda m: m["model"].update(chunk_samples=8000), "model.chunk_samples"),
    (lambda m: m["model"].update(sample_rate="44100"), "model.sample_rate"),
    (lambda m: m["model"].update(latent_dim=2**40), "model.latent_dim"),
    (lambda m: m["model"].update(channels=True), "model.channels"),
    (lambda m: m["encoder"].update(state_shape=[1, 0, 256]), "encoder.state_shape"),
    (lambda m: m["encoder"].pop("sha256"), "encoder.sha256"),
    (lambda m: m["decoder"].update(bytes=None), "decoder.bytes"),
    (lambda m: m.pop("source"), "source"),
    (lambda m: m.update(format_version=1), "format_version"),
    (lambda m: m.update(precision="w2a2"), "precision"),
    (lambda m: m["encoder"]["signatures"].pop("encode_4"), "encoder.signatures"),
    (lambda m: m["encoder"]["signatures"]["encode_1"]["inputs"].update(audio=[2, 8191]), "encoder.signatures.encode_1"),
])
def test_a_manifest_that_fails_validation_names_the_field(model_copy, edit, field):
    raw = _manifest(model_copy)
    edit(raw)
    _write(model_copy, raw)
    with pytest.raises(ModelDirError, match=rf"manifest field {field}\b"):
        Codec.load(model_copy)


def test_a_deeply_nested_or_huge_manifest_is_one_error(model_copy):
    (model_copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelDirError):
        Codec.load(model_copy)
    (model_copy / "manifest.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(ModelDirError, match="too large"):
        Codec.load(model_copy)


def test_the_manifest_round_trips_through_its_dataclasses():
    text = (DEMO_MODEL_DIR / "manifest.json").read_text()
    manifest = Manifest.from_json(text)
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert json.loads(manifest.to_json()) == json.loads(text)


@pytest.mark.parametrize("threads", [0, -1, 10**6, 2.5, True])
def test_a_thread_count_outside_1_to_256_is_refused(threads):
    with pytest.raises(ConfigError, match="threads must be"):
        Codec.load(DEMO_MODEL_DIR, threads=threads)


def test_loading_from_several_threads_leaves_stderr_where_it_was():
    before = os.fstat(2)
    threads = [threading.Thread(target=lambda: Codec.load(DEMO_MODEL_DIR, threads=1).close()) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


def test_a_program_that_uses_a_codec_writes_nothing_to_stderr_even_at_exit():
    code = ("import numpy as np; from same_edge import Codec\n"
            f"c = Codec.load({str(DEMO_MODEL_DIR)!r}); c.decode(c.encode(np.zeros((2, 9000), np.float32)))\n"
            "print('done')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "done\n" and result.stderr == ""


def test_without_memfd_create_the_weight_cache_falls_back_to_a_temporary_file(monkeypatch):
    """macOS and Windows have no memfd_create: XNNPACK's ":memory" cache cannot work there."""
    from same_edge import graph

    monkeypatch.delattr(os, "memfd_create", raising=False)
    assert graph.default_weight_cache() == ""
    codec = Codec.load(DEMO_MODEL_DIR, sides=("encoder",))
    cache = codec._graph("encoder").weight_cache
    assert cache != graph.IN_MEMORY_WEIGHT_CACHE and os.path.exists(os.path.dirname(cache))
    expected = Codec.load(DEMO_MODEL_DIR, sides=("encoder",))
    audio = np.random.default_rng(0).normal(0, 0.1, (2, 20_000)).astype(np.float32)
    assert np.array_equal(codec.encode(audio), expected.encode(audio))
    codec.close()
    assert not os.path.exists(os.path.dirname(cache))


def _round_trip(codec: Codec) -> tuple[np.ndarray, np.ndarray]:
    audio = np.random.default_rng(1).normal(0, 0.1, (2, 30_000)).astype(np.float32)
    z = codec.encode(audio)
    return z, codec.decode(z)


def _assert_same(got: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray]) -> None:
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_weight_cache_dir_keeps_one_file_per_graph_and_changes_no_output(tmp_path):
    expected = _round_trip(Codec.load(DEMO_MODEL_DIR, threads=2))
    Codec.load(DEMO_MODEL_DIR, threads=2, sides=("decoder",), weight_cache_dir=tmp_path).close()  # the other side first
    for _ in range(2):  # the first load packs the encoder's weights, the second reuses both files
        _assert_same(_round_trip(Codec.load(DEMO_MODEL_DIR, threads=2, weight_cache_dir=tmp_path)), expected)
    manifest = read_manifest(DEMO_MODEL_DIR)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{side}-{manifest.graph(side).sha256[:16]}.xnn"
                                                         for side in ("decoder", "encoder")]


def test_a_replaced_export_never_runs_on_the_packed_weights_of_the_one_it_replaced(tmp_path, model_copy):
    cache = tmp_path / "cache"
    cache.mkdir()
    _round_trip(Codec.load(model_copy, threads=2, weight_cache_dir=cache))
    move_weight(model_copy, "decoder", layer=0, delta=1e-2)  # the same graph layout, other weights
    expected = _round_trip(Codec.load(model_copy, threads=2))
    _assert_same(_round_trip(Codec.load(model_copy, threads=2, weight_cache_dir=cache)), expected)


def test_a_weight_cache_dir_that_is_not_a_directory_is_refused(tmp_path):
    (tmp_path / "cache.xnn").write_bytes(b"")
    for path in (tmp_path / "cache.xnn", tmp_path / "missing"):
        with pytest.raises(ConfigError, match="weight_cache_dir is not a directory"):
            Codec.load(DEMO_MODEL_DIR, weight_cache_dir=path)


def test_a_graph_file_replaced_in_place_after_loading_changes_nothing_and_crashes_nothing(model_copy):
    """`cp new.tflite encoder.tflite` truncates the loaded file: a mapped graph would die of SIGBUS."""
    code = ("import sys, numpy as np; from same_edge import Codec\n"
            "codec = Codec.load(sys.argv[1], threads=1)\n"
            "x = np.random.default_rng(0).normal(0, 0.1, (2, 50_000)).astype(np.float32)\n"
            "z = codec.encode(x)\n"
            "for name in ('encoder.tflite', 'decoder.tflite'):\n"
            "    with open(f'{sys.argv[1]}/{name}', 'r+b') as f:\n"
            "        f.truncate(0); f.write(b'replaced')\n"
            "assert np.array_equal(codec.encode(x), z) and codec.decode(z).shape == (2, 53_248)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code, str(model_copy)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", (done.returncode, done.stderr[-2000:])


@pytest.mark.parametrize("name", ["manifest.json", "encoder.tflite", "decoder.tflite"])
def test_a_fifo_in_place_of_a_model_file_is_refused_at_once(model_copy, name):
    (model_copy / name).unlink()
    os.mkfifo(model_copy / name)
    done = _load_in_child(model_copy)  # nobody ever writes to the FIFO: a hang shows as the child's time-out
    assert done.returncode == 2 and done.stdout.strip(), (done.stdout, done.stderr[-2000:])


def test_a_codec_is_a_context_manager_and_any_use_after_close_is_a_stream_error():
    audio = np.zeros((2, 9000), np.float32)
    with Codec.load(DEMO_MODEL_DIR, threads=1) as codec:
        z = codec.encode(audio)
        stream = codec.stream_decoder()
    for use in (lambda: codec.encode(audio), lambda: codec.decode(z), lambda: stream.push(z)):
        with pytest.raises(StreamError, match="closed"):
            use()
    codec.close()  # twice is fine


def test_close_waits_for_a_call_running_on_another_thread():
    codec = Codec.load(DEMO_MODEL_DIR, threads=1)
    audio = np.random.default_rng(0).normal(0, 0.1, (2, 44_100 * 20)).astype(np.float32)
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(codec.encode(audio)))
    worker.start()
    while not worker.is_alive():
        pass
    codec.close()
    worker.join()
    assert len(results) == 1 and isinstance(results[0], np.ndarray) and results[0].shape == (256, 216)


def test_sides_may_be_any_iterable_of_side_names():
    codec = Codec.load(DEMO_MODEL_DIR, threads=1, sides=iter(["decoder"]))
    assert codec.sides == ("decoder",)


def test_temporary_weight_caches_left_by_killed_processes_are_removed_by_the_next_load(monkeypatch, tmp_path):
    """Without memfd_create the cache is a temporary file; SIGKILL leaves it: the next load sweeps it."""
    import tempfile


    monkeypatch.delattr(os, "memfd_create", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan, alive, look_alike = (tmp_path / f"same-edge-weights-{dead.pid}-x1y2", tmp_path / f"same-edge-weights-{os.getpid()}-a",
                                 tmp_path / "same-edge-weights-notes")
    for d in (orphan, alive, look_alike):
        d.mkdir()
        (d / "weights.xnn").write_bytes(b"packed")
    codec = Codec.load(DEMO_MODEL_DIR, sides=("encoder",))
    assert not orphan.exists() and alive.exists() and look_alike.exists()
    cache_dir = os.path.dirname(codec._graph("encoder").weight_cache)
    assert os.path.basename(cache_dir).startswith(f"same-edge-weights-{os.getpid()}-")
    codec.close()
    assert not os.path.exists(cache_dir)
