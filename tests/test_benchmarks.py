"""The benchmark suite runs end to end with one command and writes its report (a smoke run on
the tiny fixture: it checks the plumbing, not the numbers)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_CONFIG, TINY_L_CONFIG, benchmark_module
from same_edge.manifest import PRECISIONS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_benchmark_suite_writes_json_markdown_and_plots(tmp_path):
    out = tmp_path / "results"
    subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--config", str(TINY_CONFIG),
                    "--same-l-config", str(TINY_L_CONFIG), "--out", str(out),
                    "--work", str(tmp_path / "work"), "--demo-checkpoint", str(tmp_path / "none.safetensors")],
                   cwd=ROOT, check=True, capture_output=True)
    report = json.loads((out / "results.json").read_text())
    speed = report["speed"]["rows"]
    assert {r["precision"] for r in speed if r["runtime"] == "same-edge LiteRT"} == set(PRECISIONS)
    assert all(r["encode_x_realtime"] > 0 and r["decode_vs_eager"] > 0 for r in speed)
    assert [r["precision"] for r in report["streaming"]] == list(PRECISIONS)
    fidelity = next(iter(report["fidelity"].values()))
    assert fidelity[0]["precision"] == "fp32" and fidelity[0]["audio_snr_db"] == float("inf")
    assert all(r["audio_snr_db"] > 10 for r in fidelity)
    assert [r["minutes"] for r in report["memory"]["rows"]] == [0.25, 0.5]
    assert all(r["cold_s"] > 0 for r in report["load"])
    profiled = {(r["precision"], r["signature"]) for r in report["profile"]}
    assert profiled == {(p, f"{side}_{w}") for p in ("fp32", "w8a8") for side in ("encode", "decode") for w in (1, 16)}
    assert all(r["undelegated"] == [] and r["partitions"] == 1 and 0 < r["fc_ms"] < r["wall_ms"] for r in report["profile"])
    assert [r["minutes"] for r in report["stream_memory"]["rows"]] == [0.25, 0.5]
    assert all(r["stream_peak_mb"] > 0 for r in report["stream_memory"]["rows"])
    native = report["native"]
    assert all(native[side]["encode_x_realtime"] > 0 for side in ("native", "python"))
    assert [r["minutes"] for r in native["roundtrip_rss"]] == [0.25, 0.5]
    java = report["java"]["paths"]
    assert {"C push", "Java push(float[])", "Java push(FloatBuffer)"} <= set(java)
    assert all(v["chunk_median_us"] > v["empty_median_us"] > 0 for v in java.values())
    peers = report["peers"]["rows"]  # the peers extra is installed with the dev environment (make test)
    runtimes = {(r["runtime"], r["precision"].removesuffix(" (most accurate tried)")) for r in peers}
    assert {("PyTorch eager", "fp32"), ("same-edge LiteRT", "fp32"), ("same-edge LiteRT", "w8a8"), ("ONNX Runtime", "fp32"),
            ("ONNX Runtime", "int8"), ("OpenVINO", "fp32"), ("OpenVINO", "int8 weights")} <= runtimes
    assert all(r[f"{side}_ms"] > 0 and math.isfinite(r[f"{side}_max_rel_error"]) for r in peers for side in ("encode", "decode"))
    eager = next(r for r in peers if r["runtime"] == "PyTorch eager")
    assert eager["encode_max_rel_error"] == eager["decode_max_rel_error"] == 0.0
    assert {r["layout"] for r in report["dataset"]["rows"]} >= {"1 worker x 1 thread"}
    exports = {r["fold"]: r for r in report["export"] if r["precision"] == "w8a8"}  # the same export, both ways
    assert set(exports) == {True, False}
    assert all(r["seconds"] > r["phases"]["MLIR passes"] > 0 and r["peak_rss_gb"] > 0 for r in report["export"])
    same_l = report["same_l"]["rows"]
    assert [(r["model"], r["precision"]) for r in same_l] == [(m, p) for m in ("SAME-S", "SAME-L") for p in PRECISIONS]
    assert {r["attention"] for r in same_l} == {"chunked", "sliding"}
    assert all(r["encode_x_realtime"] > 0 and r["decoder_p99_ms"] > 0 and r["encode_peak_mb"] > 0 for r in same_l)
    markdown = (out / "results.md").read_text()
    assert "## SAME-L against SAME-S" in markdown
    assert "## Export" in markdown and "faster with the weights folded" in markdown
    assert "## Speed" in markdown and "## Memory" in markdown and "## Per-op profile" in markdown
    assert "## Native library" in markdown and "## Java binding" in markdown and "## Other runtimes" in markdown
    assert "## Dataset encoding" in markdown and "`same-edge stream`" in markdown
    for plot in ("speed", "streaming", "memory", "fidelity", "peers"):
        assert (out / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interleaved_timing_and_speed_ratios_follow_a_fake_clock():
    speed = benchmark_module("speed")
    now, calls = [0.0], []

    def work(name: str, seconds: float):
        def fn():
            calls.append(name)
            now[0] += seconds
        return fn

    fns = {f"{speed.EAGER}|fp32|encode": work("eager-enc", 2.0), f"{speed.EAGER}|fp32|decode": work("eager-dec", 3.0),
           f"{speed.LITERT}|w8a8|encode": work("w8a8-enc", 0.5), f"{speed.LITERT}|w8a8|decode": work("w8a8-dec", 1.5)}
    times = speed.interleaved_times(fns, repeats=3, clock=lambda: now[0])
    # One warm-up round, then rounds that alternate runtimes rather than timing eager first.
    assert calls == ["eager-enc", "eager-dec", "w8a8-enc", "w8a8-dec"] * 4
    assert times[f"{speed.LITERT}|w8a8|encode"] == (0.5, 0.0) and times[f"{speed.EAGER}|fp32|decode"] == (3.0, 0.0)

    rows = [{"runtime": speed.EAGER, "precision": "fp32", "threads": 2, "encode_s": 2.0, "decode_s": 3.0,
             "ceiling_gflops": 100.0},
            {"runtime": speed.LITERT, "precision": "w8a8", "threads": 2, "encode_s": 0.5, "decode_s": 1.5,
             "ceiling_gflops": 100.0}]
    speed.add_ratios(rows, seconds=6.0, gflop={"encode": 20.0, "decode": 10.0})
    eager, graph = rows
    assert (eager["encode_vs_eager"], eager["decode_vs_eager"]) == (1.0, 1.0)
    assert (graph["encode_vs_eager"], graph["decode_vs_eager"]) == (4.0, 2.0)
    assert (graph["encode_x_realtime"], graph["decode_x_realtime"]) == (12.0, 4.0)
    # 20 GFLOP per audio second x 6 s in 0.5 s = 240 GFLOP/s against a 100 GFLOP/s ceiling.
    assert graph["encode_of_ceiling"] == 2.4 and graph["decode_of_ceiling"] == 0.4


def test_the_eager_baseline_pruned_like_the_graphs_encodes_the_same_latents(tiny_model, golden):
    import torch

    audio = torch.from_numpy(golden["audio0"])[None]
    with torch.no_grad():
        full, pruned = tiny_model.encode(audio), tiny_model.encode(audio, pruned=True)
    assert pruned.shape == full.shape and torch.allclose(pruned, full, rtol=0, atol=1e-6)


def test_the_op_profile_compares_two_exports_signature_by_signature(export_dir):
    op_profile = benchmark_module("op_profile")
    model = export_dir("fp32")
    rows = op_profile.compare_rows(model, model, ("encode_1", "decode_1"), threads=1, runs=1, rounds=2)
    assert [r["signature"] for r in rows] == ["encode_1", "decode_1"]
    for r in rows:
        before, after = r["before"], r["after"]
        assert before["nodes"] == after["nodes"] > 0 and before["partitions"] == after["partitions"] == 1
        assert all(0 < s["fc_ms"] < s["wall_ms"] and abs(s["non_fc_ms"] - (s["wall_ms"] - s["fc_ms"])) < 1e-9
                   for s in (before, after))
    table = op_profile.compare_table(rows)
    assert table.count("\n") == 3 and "| `decode_1` |" in table


def test_the_fc_share_bound_counts_only_the_ops_no_graph_shaping_removes():
    op_profile = benchmark_module("op_profile")
    row = {"fc_ms": 40.0, "ops": [
        {"op": "Fully Connected (NC, QD8, F32, QC8W) GEMM", "ms": 40.0},
        {"op": "Batch Matrix Multiply (NC, F32) GEMM", "ms": 5.0}, {"op": "Softmax (NC, F32)", "ms": 2.0},
        {"op": "TanH (NC)", "ms": 1.5}, {"op": "Sigmoid (NC)", "ms": 1.0}, {"op": "Subtract (ND)", "ms": 0.5},
        {"op": "Multiply (ND)", "ms": 7.0}, {"op": "Transpose (ND, X32) Transpose", "ms": 3.0}]}
    assert op_profile.fc_floor_bound(row) == 40.0 / 50.0
    assert op_profile.fc_floor_bound({"fc_ms": 0.0, "ops": []}) == 0.0
