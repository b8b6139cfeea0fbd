"""The benchmark suite runs end to end with one command and writes its report (a smoke run on
the tiny fixture: it checks the plumbing, not the numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import TINY_CONFIG
from same_edge_export.quantize import PRECISIONS

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_suite_writes_json_markdown_and_plots(tmp_path):
    out = tmp_path / "results"
    subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--config", str(TINY_CONFIG), "--out", str(out),
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
    markdown = (out / "results.md").read_text()
    assert "## Speed" in markdown and "## Memory" in markdown
    for plot in ("speed", "streaming", "memory", "fidelity"):
        assert (out / f"{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
