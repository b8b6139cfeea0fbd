"""Every benchmark in one run: SAME-S (seeded weights in the official layout; speed does not depend
on weight values) and the bundled demo model, on this machine.

    python benchmarks/run.py [--out benchmarks/results] [--work build/bench] [--stages ...] [--quick]

Writes ``results.json``, ``results.md`` (the tables the README shows) and PNG plots to ``--out``.
Exports are cached in ``--work``. ``--stages`` re-measures some tables and keeps the others from
the existing ``results.json``; ``--quick`` shortens every measurement (a smoke run, not numbers to
publish). About an hour on a 2-core CPU: about 35 minutes the export stage (its "before" row, the
exporter without the weight folding, is 30 of them), 5 exporting SAME-S at every precision for the
other stages (once: the exports are cached), about 15 the memory runs. The "peers" stage (ONNX
Runtime, OpenVINO, PyTorch eager on the same windows) needs the ``peers`` extra and is skipped,
with a line saying so, without it. The "same-l" stage (SAME-L against SAME-S, ``--same-l-config``)
exports a seeded full-size SAME-L at every precision first: about 20 GB of memory and an hour or
more once (w16a32's fp16 cast is most of it), then about 20 minutes of measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from dataset import dataset_rows, dataset_table
from export_speed import export_rows, export_table
from java import measure as java_measure
from java import table as java_table
from kernels import kernel_rows, kernel_table
from memory import load_times, peak_rss, stream_memory
from op_profile import op_table, profile_rows, profile_summary_table
from peers import measure as peers_measure
from peers import peers_table
from plots import plot_all
from precision_fidelity import export_precisions, fidelity_rows, fidelity_table
from same_l import measure as same_l_measure
from same_l import table as same_l_table
from speed import machine, speed_rows, speed_table, stream_hops, streaming_table

from native import measure as native_measure
from native import table as native_table
from same_edge.audio import read_audio
from same_edge.manifest import PRECISIONS
from same_edge.models import DEMO_MODEL_DIR, SAME_L_CONFIG, SAME_S_CONFIG, demo_clip
from same_edge_export.config import load_config
from same_edge_export.music import synth_music
from same_edge_export.random_weights import write_seeded_checkpoint
from same_edge_recipes.demo.data import fetch_tracks

DEFAULT_PRECISION = "w8a8"
SAMPLE_RATE = load_config(SAME_S_CONFIG).sample_rate  # the demo model shares it
STAGES = ("export", "kernels", "speed", "peers", "streaming", "profile", "fidelity", "memory", "native", "java", "dataset",
          "same-l")


def real_music(cache: Path, seconds: float = 30.0) -> tuple[str, np.ndarray]:
    """An excerpt of the demo recipe's held-out music (fetched with ``apt-get download`` like the
    recipe), or the bundled synthesised clip where that cannot be fetched."""
    try:
        track = fetch_tracks("heldout", cache)[0]
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"held-out music unavailable ({e}); using the bundled clip")
        return "the bundled 10 s clip", read_audio(demo_clip(), SAMPLE_RATE)[0]
    audio = read_audio(track, SAMPLE_RATE)[0]
    n = int(seconds * SAMPLE_RATE)
    start = min(audio.shape[1] // 4, audio.shape[1] - n)
    return f"{seconds:.0f} s of held-out music ({track.name})", np.ascontiguousarray(audio[:, start : start + n])


def _fp32_kernel_gflops(kernels: list[dict]) -> dict[int, float]:
    """Threads -> the fastest fp32 rate on a whole SAME-S block's FC layers (PyTorch or LiteRT)."""
    best: dict[int, float] = {}
    for r in kernels:
        if r["layer"] == "block" and r["kernel"] in ("PyTorch fp32", "LiteRT fp32"):
            best[r["threads"]] = max(best.get(r["threads"], 0.0), r["gflops"])
    return best


def _seeded_checkpoint(config: Path, work: Path) -> Path:
    """``WORK/<config's folder>/seeded.safetensors``: seeded weights in the official layout, written once."""
    path = work / config.parent.name / "seeded.safetensors"
    if not path.exists():
        write_seeded_checkpoint(config, path, seed=0)
    return path


def _stage(name: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--work", type=Path, default=Path("build/bench"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60], help="input lengths of the memory runs")
    p.add_argument("--config", type=Path, default=SAME_S_CONFIG, help="model measured (default: SAME-S)")
    p.add_argument("--same-l-config", type=Path, default=SAME_L_CONFIG,
                   help="SAME-L measured against --config in the same-l stage (default: SAME-L)")
    p.add_argument("--demo-checkpoint", type=Path, default=DEMO_MODEL_DIR / "model.safetensors",
                   help="trained demo weights for the fidelity table (default: the bundled demo model)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                   help="re-measure only these, keeping the rest of an existing results.json")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.repeats, args.minutes = 2, [0.25, 0.5]
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "results.json"
    report: dict = json.loads(previous.read_text()) if set(args.stages) != set(STAGES) and previous.exists() else {}
    report.update({"machine": machine(), "torch": torch.__version__, "repeats": args.repeats})

    if "export" in args.stages:  # first: the machine is otherwise idle, and the exports below are cached
        _stage("export time: before and after the weight folding, every precision, the SAME-S test's export")
        report["export"] = export_rows(args.config, _seeded_checkpoint(args.config, args.work), args.work / "export-speed",
                                       quick=args.quick)

    _stage(f"export seeded {args.config} at every precision")
    checkpoint = _seeded_checkpoint(args.config, args.work)
    same_s = checkpoint.parent
    dirs = export_precisions(args.config, checkpoint, same_s)

    if "kernels" in args.stages:
        _stage("matmul kernels per precision")
        tokens = 64 if args.quick else 544  # 544: one 16-chunk SAME-S window
        report["kernels"] = kernel_rows([1, 2], args.repeats, args.work / "kernels" / str(tokens), tokens)

    if "speed" in args.stages:
        _stage("offline speed against PyTorch eager")
        audio = synth_music(5.94)
        report["speed"] = {"audio_seconds": audio.shape[1] / SAMPLE_RATE,
                           "rows": speed_rows(args.config, same_s, audio, [1, 2], args.repeats,
                                              _fp32_kernel_gflops(report.get("kernels", [])))}

    if "peers" in args.stages:  # needs the peers extra; skipped with a line saying so without it
        _stage("ONNX Runtime, OpenVINO and PyTorch eager against LiteRT on the same 16-chunk windows")
        report.pop("peers", None)
        peers = peers_measure(args.config, checkpoint, {pr: dirs[pr] for pr in ("fp32", "w8a32", "w8a8")},
                              args.work / "peers", [2] if args.quick else [1, 2], args.repeats)
        if peers is not None:
            report["peers"] = peers

    if "streaming" in args.stages:
        _stage("streaming per hop")
        report["streaming"] = [stream_hops(dirs[pr], 2, seconds=8.0 if args.quick else 30.0) for pr in PRECISIONS]

    if "profile" in args.stages:
        _stage("per-op profile: windows 1 and 16, fp32 and w8a8")
        report["profile"] = profile_rows({pr: dirs[pr] for pr in ("fp32", "w8a8")}, threads=2, runs=3 if args.quick else 10)

    if "fidelity" in args.stages:
        _stage("fidelity per precision")
        report["fidelity"] = {"SAME-S (seeded weights), 12 s synthesised music": fidelity_rows(dirs, synth_music(12.0))}
        if args.demo_checkpoint.exists():
            demo_dirs = export_precisions(DEMO_MODEL_DIR / "model_config.json", args.demo_checkpoint, args.work / "demo")
            name, music = real_music(args.work / "data")
            report["fidelity"][f"demo model (trained weights), {name}"] = fidelity_rows(demo_dirs, music)
        else:
            print(f"no demo checkpoint at {args.demo_checkpoint}: fidelity on trained weights skipped")

    if "memory" in args.stages:
        _stage("start-up and memory")
        report["load"] = [{"precision": pr, "mb": sum(f.stat().st_size for f in dirs[pr].glob("*.tflite")) / 1e6,
                           **load_times(dirs[pr], repeats=args.repeats)} for pr in PRECISIONS]
        graphs_mb = next(r["mb"] for r in report["load"] if r["precision"] == DEFAULT_PRECISION)
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            report["memory"] = {"precision": DEFAULT_PRECISION, "graphs_mb": graphs_mb,
                                "rows": [peak_rss(dirs[DEFAULT_PRECISION], m, Path(tmp), 2) for m in args.minutes]}
            # `same-edge stream` (window 1, one-hop blocks) on the bundled model: flat, within graphs + 200 MB
            report["stream_memory"] = stream_memory(DEMO_MODEL_DIR, args.minutes, Path(tmp), 2)

    if "native" in args.stages:  # needs `make native`
        _stage("libsame_edge against the Python runtime, the bundled model")
        report["native"] = native_measure(DEMO_MODEL_DIR, threads=2, calls=20 if args.quick else 60,
                                          minutes=tuple(args.minutes[:1] + args.minutes[-1:]))

    if "java" in args.stages:  # needs `make java`
        _stage("the Java binding's cost per call against C's, the bundled model")
        report["java"] = java_measure(DEMO_MODEL_DIR, calls=50 if args.quick else 300, threads=2)

    if "dataset" in args.stages:
        _stage("encode-dataset: workers, Ray, many short files against one long one")
        report["dataset"] = dataset_rows(DEMO_MODEL_DIR, args.work / "dataset", short_files=20 if args.quick else 500,
                                         repeats=1 if args.quick else 3)

    if "same-l" in args.stages:  # last: its full-size export needs about 20 GB and an hour or more (w16a32's fp16 cast)
        _stage(f"SAME-L against SAME-S: seeded {args.same_l_config} at every precision, both measured in one run")
        l_checkpoint = _seeded_checkpoint(args.same_l_config, args.work)
        l_dirs = export_precisions(args.same_l_config, l_checkpoint, l_checkpoint.parent)
        quick = dict(seconds=2.0, repeats=1, stream_seconds=2.0, memory_minutes=0.05) if args.quick else {}
        report["same_l"] = same_l_measure({"SAME-S": args.config, "SAME-L": args.same_l_config},
                                          {"SAME-S": dirs, "SAME-L": l_dirs}, threads=2, work=args.work, **quick)

    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render(report)
    (args.out / "results.md").write_text(markdown)
    plot_all(report, args.out)
    print("\n" + markdown)


def render(report: dict) -> str:
    """The Markdown report: one table per benchmark."""
    parts = [f"Machine: {report['machine']}; PyTorch {report['torch']}; medians of {report['repeats']} runs, "
             "spread as ± half the range.\n",
             f"## Speed: SAME-S, {report['speed']['audio_seconds']:.2f} s of music per call\n",
             "fp32 ceiling (the best of a 2048x2048 torch matmul and the fp32 kernels on SAME-S's layers below): "
             + ", ".join(f"{r['ceiling_gflops']:.0f} GFLOP/s with {r['threads']} thread(s)"
                         for r in report["speed"]["rows"] if r["runtime"] == "PyTorch eager") + ".\n",
             speed_table(report["speed"]["rows"]),
             "\n## Matrix-multiply kernels: one SAME-S block's FC layers\n", kernel_table(report["kernels"]),
             "\n## Streaming: SAME-S at the smallest window (one chunk = 2 frames), 2 threads\n",
             streaming_table(report["streaming"])]
    if report.get("peers"):
        pe = report["peers"]
        parts += [f"\n## Other runtimes: SAME-S, one {pe['window_chunks']}-chunk window call "
                  f"({pe['window_seconds']:.2f} s of audio), medians of {pe['repeats']} interleaved rounds\n",
                  "Errors of the main output (latents, audio) against PyTorch fp32 on the same inputs; "
                  "\"vs same-edge w8a8\": time over same-edge w8a8's at the same threads (above 1: slower). "
                  + ", ".join(f"{k} {v}" for k, v in pe["versions"].items()) + ".\n",
                  peers_table(pe)]
    if report.get("profile"):  # LiteRT's profiler, per op type; "FC / end to end" is the share of the FC floor
        parts += ["\n## Per-op profile: SAME-S, 2 threads (LiteRT profiler, XNNPACK nodes)\n",
                  profile_summary_table(report["profile"])]
        parts += ["\n" + op_table(r, top=12) for r in report["profile"]]
    parts += ["\n## Fidelity against fp32\n"]
    for name, rows in report["fidelity"].items():
        parts += [f"\n{name}:\n", fidelity_table(rows)]
    parts += ["\n## Start-up: SAME-S `Codec.load` in a fresh process\n",
              "| precision | graphs MB | cold s | warm s |", "|---|---|---|---|"]
    parts += [f"| {r['precision']} | {r['mb']:.1f} | {r['cold_s']:.2f} (±{r['cold_spread_s'] / 2:.2f}) | "
              f"{r['warm_s']:.2f} (±{r['warm_spread_s'] / 2:.2f}) |" for r in report["load"]]
    mem = report["memory"]
    parts += [f"\n## Memory: SAME-S {mem['precision']} ({mem['graphs_mb']:.0f} MB of graphs), file to file, 2 threads\n",
              "| input minutes | encode peak RSS MB | decode peak RSS MB | encode s | decode s |", "|---|---|---|---|---|"]
    parts += [f"| {r['minutes']:g} | {r['encode_peak_mb']:.0f} | {r['decode_peak_mb']:.0f} | {r['encode_s']:.0f} | "
              f"{r['decode_s']:.0f} |" for r in mem["rows"]]
    if report.get("stream_memory"):
        sm = report["stream_memory"]
        parts += [f"\n## Memory: `same-edge stream` on the bundled model ({sm['graphs_mb']:.1f} MB of graphs; "
                  f"target {sm['target_mb']:.0f} MB), 2 threads\n", "| input minutes | peak RSS MB |", "|---|---|"]
        parts += [f"| {r['minutes']:g} | {r['stream_peak_mb']:.0f} |" for r in sm["rows"]]
    if report.get("export"):
        parts += ["\n## Export: SAME-S (seeded weights), `same-edge export --no-cache`, a fresh process each\n",
                  export_table(report["export"])]
    if report.get("native"):
        parts += ["\n## Native library against the Python runtime\n", native_table(report["native"])]
    if report.get("java"):
        parts += ["\n## Java binding against C, per push\n", java_table(report["java"])]
    if report.get("dataset"):
        parts += ["\n## Dataset encoding (`same-edge encode-dataset`)\n", dataset_table(report["dataset"])]
    if report.get("same_l"):
        parts += ["\n## SAME-L against SAME-S (seeded weights), one run\n", same_l_table(report["same_l"])]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
