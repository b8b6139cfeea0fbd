"""Convert once for every precision: one fp32 conversion quantised into a directory per precision,
byte-identical to single exports; a cache of that conversion reused while its key holds, and
rebuilt, never used, when damaged; each phase timed.

Conversions are counted by replacing ``convert_graph`` with one that answers the session's fp32
graphs of the tiny fixture (conftest.tiny_float_graphs).
"""

import hashlib
import json

import pytest

from conftest import TEST_WINDOWS, TINY_CHECKPOINT, TINY_CONFIG

PRECISIONS = ("fp32", "w16a32", "w8a32", "w8a8", "w4a8")
SIDES = ("encoder", "decoder")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def conversions(monkeypatch, tiny_float_graphs):
    """The sides converted so far; conversion answered from the session's fp32 graphs."""
    from same_edge_export import convert

    calls = []

    def convert_graph(model, side, windows, timer=None):
        calls.append(side)
        return tiny_float_graphs[side]

    monkeypatch.setattr(convert, "convert_graph", convert_graph)
    return calls


def export_tiny(out, precisions=("fp32",), windows=TEST_WINDOWS, **kwargs):
    """Fidelity on 1 s of music instead of 12 s: it does not change the graphs, and keeps these quick."""
    from same_edge_export.convert import export_precisions
    from same_edge_export.music import synth_music

    return export_precisions(TINY_CONFIG, TINY_CHECKPOINT, out, precisions, windows, fidelity_audio=synth_music(1.0),
                             progress=False, **kwargs)


def cache_entry(cache_dir, windows=TEST_WINDOWS):
    from same_edge_export.cache import conversion_key

    return cache_dir / conversion_key(TINY_CONFIG, TINY_CHECKPOINT, windows)


@pytest.mark.slow  # five quantisations and five single exports: a minute or more
def test_every_precision_from_one_conversion_is_byte_identical_to_its_single_precision_export(
        tmp_path, conversions, export_dir):
    manifests = export_tiny(tmp_path, PRECISIONS)
    assert conversions == ["encoder", "decoder"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PRECISIONS)
    for precision in PRECISIONS:
        single = json.loads((export_dir(precision) / "manifest.json").read_text())
        for side in SIDES:
            assert sha256(tmp_path / precision / f"{side}.tflite") == sha256(export_dir(precision) / f"{side}.tflite")
            assert manifests[precision].graph(side).sha256 == single[side]["sha256"]
        assert manifests[precision].precision == precision


def test_the_pytorch_side_of_the_precisions_is_computed_once_for_all_of_them(tmp_path, conversions, monkeypatch):
    """Each signature's shapes and the fidelity reference do not depend on the precision: a second
    precision runs the PyTorch model no more, and writes the same manifest fields and reference."""
    from same_edge_export import convert
    from same_edge_export.model import SameAutoencoder

    runs = {"encode": 0, "window modules": 0}
    encode, graph_modules = SameAutoencoder.encode, convert.graph_modules

    def counted_encode(self, *args, **kwargs):
        runs["encode"] += 1
        return encode(self, *args, **kwargs)

    def counted_graph_modules(model):
        runs["window modules"] += 1
        return graph_modules(model)

    monkeypatch.setattr(SameAutoencoder, "encode", counted_encode)
    monkeypatch.setattr(convert, "graph_modules", counted_graph_modules)
    manifests = export_tiny(tmp_path, ["fp32", "w8a8"])
    assert runs == {"encode": 1, "window modules": 1}
    fp32, w8a8 = (json.loads((tmp_path / p / "fidelity.json").read_text()) for p in ("fp32", "w8a8"))
    assert fp32["encoder"]["max_abs_reference"] == w8a8["encoder"]["max_abs_reference"]
    for side in SIDES:
        assert manifests["fp32"].graph(side).signatures == manifests["w8a8"].graph(side).signatures
    assert manifests["fp32"].source == manifests["w8a8"].source


def test_one_precision_is_written_to_the_directory_named_not_beneath_it(tmp_path, conversions):
    export_tiny(tmp_path / "model", ["w8a8"])
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "decoder.tflite", "encoder.tflite", "fidelity.json", "manifest.json"]


def test_a_second_export_takes_the_fp32_graphs_from_the_cache_and_writes_the_same_graphs(
        tmp_path, conversions, tiny_float_graphs):
    cache = tmp_path / "cache"
    export_tiny(tmp_path / "first", cache_dir=cache)
    assert conversions == ["encoder", "decoder"]
    entry = cache_entry(cache)
    assert sorted(p.name for p in cache.iterdir()) == [entry.name]  # no staging directory left
    assert (entry / "encoder.tflite").read_bytes() == tiny_float_graphs["encoder"]
    export_tiny(tmp_path / "second", cache_dir=cache)
    assert conversions == ["encoder", "decoder"]  # not converted again
    for side in SIDES:
        assert sha256(tmp_path / "second" / f"{side}.tflite") == sha256(tmp_path / "first" / f"{side}.tflite")


def flip_a_byte(entry):
    path = entry / "encoder.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(entry):
    path = entry / "decoder.tflite"
    path.write_bytes(path.read_bytes()[:-100])


def remove_a_graph(entry):
    (entry / "encoder.tflite").unlink()


def garble_the_index(entry):
    (entry / "entry.json").write_text('{"format": 1, "files": ')


@pytest.mark.parametrize("damage", [flip_a_byte, truncate, remove_a_graph, garble_the_index])
def test_a_damaged_cache_entry_is_reported_and_rebuilt_never_used(tmp_path, conversions, tiny_float_graphs, capsys,
                                                                  damage):
    from same_edge_export.cache import ConversionCache

    cache = tmp_path / "cache"
    entry = cache_entry(cache)
    ConversionCache(cache).store(entry.name, tiny_float_graphs)
    damage(entry)
    export_tiny(tmp_path / "model", cache_dir=cache)
    assert conversions == ["encoder", "decoder"]
    assert f"conversion cache entry {entry.name[:12]} is damaged" in capsys.readouterr().err
    for side in SIDES:
        assert (tmp_path / "model" / f"{side}.tflite").stat().st_size > 0
    assert ConversionCache(cache).load(entry.name) == tiny_float_graphs  # rebuilt whole


def test_an_export_with_other_windows_misses_the_cache(tmp_path, conversions, tiny_float_graphs):
    from same_edge_export.cache import ConversionCache

    cache = tmp_path / "cache"
    ConversionCache(cache).store(cache_entry(cache, windows=(1,)).name, tiny_float_graphs)
    export_tiny(tmp_path / "model", windows=TEST_WINDOWS, cache_dir=cache)
    assert conversions == ["encoder", "decoder"]
    assert cache_entry(cache, windows=(1,)) != cache_entry(cache) and cache_entry(cache).is_dir()


def test_the_conversion_key_changes_with_config_checkpoint_windows_tool_versions_and_graph_sources(
        tmp_path, monkeypatch):
    from same_edge_export import cache

    config, checkpoint = tmp_path / "model_config.json", tmp_path / "model.safetensors"
    config.write_bytes(TINY_CONFIG.read_bytes())
    checkpoint.write_bytes(TINY_CHECKPOINT.read_bytes())
    key = cache.conversion_key(config, checkpoint, (1, 2))
    assert cache.conversion_key(config, checkpoint, (2, 1)) == key  # the windows, not their order
    assert cache.conversion_key(config, checkpoint, (1, 4)) != key
    config.write_bytes(TINY_CONFIG.read_bytes() + b" ")
    assert cache.conversion_key(config, checkpoint, (1, 2)) != key
    config.write_bytes(TINY_CONFIG.read_bytes())
    checkpoint.write_bytes(TINY_CHECKPOINT.read_bytes()[:-1] + b"\0")
    assert cache.conversion_key(config, checkpoint, (1, 2)) != key
    checkpoint.write_bytes(TINY_CHECKPOINT.read_bytes())
    assert cache.conversion_key(config, checkpoint, (1, 2)) == key
    version = cache._version
    for package in ("torch", "litert-torch", "ai-edge-litert", "same-edge"):
        with monkeypatch.context() as m:
            m.setattr(cache, "_version", lambda p, package=package: "0.0" if p == package else version(p))
            assert cache.conversion_key(config, checkpoint, (1, 2)) != key
    with monkeypatch.context() as m:
        m.setattr(cache, "GRAPH_SOURCES", cache.GRAPH_SOURCES[:-1])
        assert cache.conversion_key(config, checkpoint, (1, 2)) != key


def test_the_default_cache_is_under_the_users_cache_directory(monkeypatch, tmp_path):
    from same_edge_export.cache import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "same-edge" / "conversions"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "same-edge" / "conversions"


def test_export_command_writes_one_directory_per_precision_and_times_each_phase_with_verbose(
        tmp_path, conversions, capsys):
    import soundfile as sf

    from same_edge.cli import main
    from same_edge_export.music import synth_music

    sf.write(tmp_path / "music.wav", synth_music(1.0).T, 44100, subtype="FLOAT")
    rc = main(["export", "--config", str(TINY_CONFIG), "--checkpoint", str(TINY_CHECKPOINT), "--precision", "fp32,w8a8",
               "--windows", *map(str, TEST_WINDOWS), "--out", str(tmp_path / "out"), "--fidelity-audio",
               str(tmp_path / "music.wav"), "--cache-dir", str(tmp_path / "cache"), "--quiet", "--verbose"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert [line.split(":")[0] for line in out.splitlines()] == [str(tmp_path / "out" / p) for p in ("fp32", "w8a8")]
    rows = {line[:28].strip() for line in err.splitlines()}
    assert {"load checkpoint", "conversion cache lookup", "conversion cache store", "total"} <= rows
    for precision in ("fp32", "w8a8"):
        for phase in ("manifest", "quantise", "op check", "delegation check", "fidelity", "write"):
            assert f"{precision}: {phase}" in rows
    assert "phase                        window  encoder s  decoder s   total s" in err.splitlines()
    peak = [line.split() for line in err.splitlines() if line.startswith("peak RSS")]
    assert len(peak) == 1 and peak[0][3] == "GB" and 0.1 < float(peak[0][2]) < 16  # this process's, torch loaded


@pytest.mark.parametrize(("given", "error"), [("fp64", "unknown precision fp64"), ("fp32,,w9", "unknown precision w9")])
def test_export_command_refuses_an_unknown_precision_in_one_line(capsys, tmp_path, given, error):
    from same_edge.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["export", "--config", "c.json", "--checkpoint", "m.safetensors", "--precision", given,
              "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and error in err and len(err.strip().splitlines()) == 1


def test_all_precisions_in_their_order_and_duplicates_once():
    from same_edge.cli import build_parser

    def parse(spec):
        return build_parser().parse_args(["export", "--config", "c", "--checkpoint", "m", "--out", "o",
                                          "--precision", spec]).precision

    assert parse("all") == list(PRECISIONS)
    assert parse("w8a8, fp32,w8a8") == ["w8a8", "fp32"]
    assert build_parser().parse_args(["export", "--config", "c", "--checkpoint", "m", "--out", "o"]).precision == ["fp32"]


def test_litert_torch_conversion_phases_are_timed_per_signature_window(tmp_path):
    """A two-signature conversion of a small module: each litert-torch phase has its row, by window."""
    import torch

    from same_edge.graph import stderr_silenced
    from same_edge_export.phases import PhaseTimer, litert_phases

    with stderr_silenced():
        import litert_torch
        from litert_torch import fx_infra, progress

    class Block(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x @ x.T).softmax(-1)

    timer, started = PhaseTimer(), []
    with timer.reporting_to(started.append), litert_phases(timer), stderr_silenced():
        converter = litert_torch.signature("encode_1", Block().eval(), sample_kwargs={"x": torch.ones(4, 8)})
        converter = converter.signature("encode_flush", Block().eval(), sample_kwargs={"x": torch.ones(2, 8)})
        converter.convert().export(str(tmp_path / "graph.tflite"))
    for window in ("1", "flush"):
        assert {("trace", window), ("pre-convert decompositions", window), ("lowering", window),
                ("pre-lower decompositions", window)} <= set(timer.seconds)
    assert {("MLIR passes", ""), ("serialisation", "")} <= set(timer.seconds)
    assert "lowering (window flush)" in started
    assert all(t >= 0 for row in timer.seconds.values() for t in row.values())
    assert progress.task.__module__ == "litert_torch.progress"  # put back afterwards
    assert fx_infra.safe_run_decompositions.__module__.startswith("litert_torch.fx_infra")


def test_phase_times_are_exclusive_so_that_the_rows_add_up_to_the_whole():
    import time

    from same_edge_export.phases import PhaseTimer

    timer = PhaseTimer()
    start = time.perf_counter()
    with timer.phase("conversion, other", side="encoder"):
        time.sleep(0.02)
        with timer.phase("trace", window="1"):
            time.sleep(0.05)
    whole = time.perf_counter() - start
    assert timer.seconds[("trace", "1")]["encoder"] >= 0.05  # a nested phase inherits the side
    assert 0.02 <= timer.seconds[("conversion, other", "")]["encoder"] < 0.05
    assert timer.total() == pytest.approx(whole, abs=0.01)
