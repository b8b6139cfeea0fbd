"""benchmarks/peers.py on the tiny fixture: every runtime runs the exported window modules, ONNX
Runtime's fp32 agrees with PyTorch, the int8 rows exist, and without the peer packages the stage
says in one line how to get them."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from conftest import TEST_WINDOWS, TINY_CHECKPOINT, TINY_CONFIG, benchmark_module


def test_without_the_peer_packages_the_stage_prints_one_line_and_is_skipped(monkeypatch, capsys):
    peers = benchmark_module("peers")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    assert peers.measure(TINY_CONFIG, TINY_CHECKPOINT, {}, Path("unused"), [1], 1) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "onnxruntime" in out and "pip install 'same-edge[peers]'" in out


def test_every_runtime_runs_the_same_windows_and_onnx_runtime_fp32_matches_pytorch(export_dir, tiny_model, tmp_path):
    peers = benchmark_module("peers")
    if peers.unavailable():
        pytest.skip(peers.unavailable())
    window = max(TEST_WINDOWS)
    w = peers.window_calls(tiny_model, window)
    dirs = {p: export_dir(p) for p in ("fp32", "w8a8")}
    report = peers.peer_rows(w, peers.settings(w, dirs, tmp_path, "tiny"), threads_list=[1], repeats=1)
    # An int8 row whose own setting was the most accurate tried is named so ("int8 (most accurate tried)").
    rows = {(r["runtime"], r["precision"].removesuffix(" (most accurate tried)")): r for r in report["rows"]}
    assert {(peers.EAGER, "fp32"), (peers.LITERT, "fp32"), (peers.LITERT, "w8a8"), (peers.ORT, "fp32"),
            (peers.ORT, "int8"), (peers.OPENVINO, "fp32"), (peers.OPENVINO, "int8 weights")} <= set(rows)
    for r in report["rows"]:
        for side in ("encode", "decode"):
            assert r[f"{side}_ms"] > 0 and r[f"{side}_x_realtime"] > 0 and r[f"{side}_vs_w8a8"] > 0
            assert math.isfinite(r[f"{side}_max_rel_error"])
    eager = rows[(peers.EAGER, "fp32")]
    assert eager["encode_max_rel_error"] == eager["decode_max_rel_error"] == 0.0
    assert rows[(peers.LITERT, "w8a8")]["encode_vs_w8a8"] == 1.0
    for runtime in (peers.ORT, peers.OPENVINO, peers.LITERT):
        fp32 = rows[(runtime, "fp32")]
        assert fp32["encode_max_rel_error"] < 1e-4 and fp32["decode_max_rel_error"] < 1e-4, runtime
    # The int8 settings tried for the most accurate row are listed, with their errors.
    assert {r["runtime"] for r in report["alternatives"]} == {peers.ORT, peers.OPENVINO}
    table = peers.peers_table(report)
    assert table.count(f"| {peers.ORT} | int8") >= 1 and "| 1 |" in table


def test_onnx_runtime_int8_quantises_every_linear_layer_as_same_edge_does(tiny_model, tmp_path):
    # Seven linear layers a block (q, k, v, out, value, gate, down) and two at the ends. Without
    # ONNX Runtime's pre-processing its quantiser saw the shapes of a third of them only and left
    # the rest fp32 (full-size SAME-S: 14 of 44), which flattered its speed.
    peers = benchmark_module("peers")
    if peers.unavailable():
        pytest.skip(peers.unavailable())
    import collections

    import onnx

    files = benchmark_module("onnx_files")
    w = peers.window_calls(tiny_model, max(TEST_WINDOWS))
    for side in peers.SIDES:
        pre = files.ort_preprocessed(peers.export_onnx(w, side, tmp_path / f"{side}.onnx"), tmp_path / f"{side}-pre.onnx")
        linear = len(files.linear_layers(pre))
        ops = collections.Counter(n.op_type for n in onnx.load(str(files.ort_int8(pre, tmp_path / f"{side}-q.onnx"))).graph.node)
        blocks = getattr(tiny_model.config, "encoder" if side == "encode" else "decoder").depth
        assert linear == 7 * blocks + 2 and ops["MatMulInteger"] == linear, side
