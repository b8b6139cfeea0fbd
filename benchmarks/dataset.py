"""Dataset encoding throughput (``same-edge encode-dataset``): worker layouts, Ray, per-file overhead.

    python benchmarks/dataset.py [--model models/demo] [--short-files 500] [--short-seconds 3]
                                 [--work build/bench-dataset] [--out dataset.json]

On one set of files, one model and one run: end-to-end x real time (wall clock from the call to
the summary, worker start-up and model loads included; Ray's own start-up is timed apart) and
files per second for one process with every thread (the reference), one single-threaded worker,
one single-threaded worker per core, and Ray on this machine with the same workers. Scaling
efficiency is each layout's x real time over the reference's. Per-file overhead: one worker on
many short files against one long file of the same total audio (target: the short files at
>= 90% of the long file's speed). Layouts run in interleaved rounds and each reports its best
round (the least disturbed on a shared machine) and its median. Peak RSS is the largest of any
worker's. ``dataset_rows`` and ``dataset_table`` are what
``benchmarks/run.py`` calls. Prints a Markdown table; writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from same_edge.dataset import DatasetOptions, encode_dataset
from same_edge.graph import available_cores
from same_edge.manifest import read_manifest
from same_edge.models import DEMO_MODEL_DIR

SAMPLE_RATE = read_manifest(DEMO_MODEL_DIR).model.sample_rate


def _music(seconds: float, seed: int) -> np.ndarray:
    """``[n, 2]`` float32 of plucked tones and noise (encoding speed does not depend on content)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    x = 0.25 * np.sin(2 * np.pi * rng.uniform(80, 800) * t) * np.exp(-(t % 0.37) * 4) + 0.02 * rng.normal(size=t.size)
    return np.stack([x, np.roll(x, 300)], axis=1).astype(np.float32)


def write_corpus(root: Path, files: int, seconds: float) -> Path:
    """``files`` FLAC files of ``seconds`` each, 100 to a directory; written once and reused."""
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(files):
        d = root / f"{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        if seconds <= 60:
            sf.write(d / f"{i:05d}.flac", _music(seconds, i), SAMPLE_RATE)
            continue
        with sf.SoundFile(str(d / f"{i:05d}.flac"), "w", SAMPLE_RATE, 2) as f:  # long files a minute at a time
            for k in range(int(np.ceil(seconds / 60))):
                f.write(_music(min(60.0, seconds - 60 * k), i * 1000 + k))
    done.touch()
    return root


def _run(label: str, corpus: Path, out: Path, model: Path, workers: int, threads: int, ray: str | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cpu0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    s = encode_dataset(corpus, out, DatasetOptions(model=model, workers=workers, threads=threads, ray=ray, progress=False))
    wall = time.perf_counter() - t0
    # This process is the coordinator; local workers are its children, reaped by the end of the call
    # (Ray's actors belong to the raylet and are not counted).
    cpu1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    coordinator_s = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    workers_s = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
    coordinator_ms = 1000 * coordinator_s / s.files
    assert s.failed == 0 and s.encoded == s.files, s
    shutil.rmtree(out, ignore_errors=True)
    row = {"layout": label, "mode": s.mode, "workers": s.workers, "threads": s.threads, "files": s.files,
           "audio_seconds": s.audio_seconds, "wall_seconds": round(wall, 2), "x_real_time": round(s.audio_seconds / wall, 1),
           "files_per_second": round(s.files / wall, 1), "peak_rss_mb": s.peak_rss_mb,
           "coordinator_cpu_ms_per_file": round(coordinator_ms, 2),
           # Audio seconds per CPU second of the whole job: x real time per fully busy core, which a shared,
           # loaded machine does not change much (the wall clock it does).
           "cpu_x_real_time": round(s.audio_seconds / (coordinator_s + workers_s), 1) if mode_local(ray) else None}
    # Ray's actors run in processes this one cannot time: no CPU figure for them.
    per_cpu = "n/a" if row["cpu_x_real_time"] is None else f"{row['cpu_x_real_time']}x"
    print(f"  {label:<44} {row['x_real_time']:6.1f}x real time, {row['files_per_second']:6.1f} files/s, "
          f"wall {wall:6.1f} s, peak RSS {s.peak_rss_mb:.0f} MB/worker, coordinator {coordinator_ms:.2f} ms CPU/file, "
          f"{per_cpu} real time per CPU second", flush=True)
    return row


def worker_cpu_rate(model: Path, corpus: Path, out: Path, limit: int | None = None) -> dict:
    """One worker's own cost, in this process and in CPU time (what a loaded machine disturbs least):
    x real time per CPU second of ``Encoder.run`` over the corpus's files (the first ``limit``)."""
    from same_edge.dataset.job import Job, Task
    from same_edge.dataset.worker import Encoder
    from same_edge.manifest import read_manifest

    m = read_manifest(model)
    shutil.rmtree(out, ignore_errors=True)
    job = Job(str(model.resolve()), str(corpus.resolve()), str(out.resolve()), "same-edge", None, False, False, "skip",
              m.model_id, m.precision)
    encoder = Encoder(job, threads=1)
    files = sorted(corpus.rglob("*.flac"))[:limit]
    tasks = [Task("file", f.relative_to(corpus).as_posix() + ".npz", f.relative_to(corpus).as_posix(), str(f)) for f in files]
    encoder.run(tasks[0])  # warm: first-call set-up is not a per-file cost
    audio = 0.0
    cpu = time.process_time()
    for task in tasks[1:] or tasks:
        r = encoder.run(task)
        assert r["status"] == "ok", r
        audio += r["seconds"]
    cpu = time.process_time() - cpu
    encoder.codec.close()
    shutil.rmtree(out, ignore_errors=True)
    return {"files": len(tasks[1:] or tasks), "audio_seconds": round(audio, 1), "cpu_seconds": round(cpu, 3),
            "cpu_x_real_time": round(audio / cpu, 1)}


def mode_local(ray: str | None) -> bool:
    return ray is None


def _best(runs: list[dict]) -> dict:
    """The fastest of a layout's runs (the least disturbed on a shared machine), with the median beside it."""
    best = dict(max(runs, key=lambda r: r["x_real_time"]))
    best["median_x_real_time"] = float(np.median([r["x_real_time"] for r in runs]))
    best["runs"] = len(runs)
    return best


def dataset_rows(model: Path, work: Path, short_files: int = 500, short_seconds: float = 3.0, ray: bool = True,
                 repeats: int = 3) -> dict:
    """Every layout on ``short_files`` files of ``short_seconds`` s, and one and ``cores`` workers on one
    file of the same total length, ``repeats`` interleaved rounds; returns {"cores", "model", "rows",
    "overhead"} with each layout's best round (and median)."""
    cores = available_cores()
    short = write_corpus(work / f"short-{short_files}x{short_seconds:g}s", short_files, short_seconds)
    long = write_corpus(work / f"long-1x{short_files * short_seconds:g}s", 1, short_files * short_seconds)
    out = work / "out"
    print(f"dataset encoding, {model}: {short_files} files x {short_seconds:g} s; {cores} cores", flush=True)
    layouts = [(f"1 process x {cores} threads (reference)", short, 1, cores, None),
               ("1 worker x 1 thread", short, 1, 1, None),
               (f"{cores} workers x 1 thread (default)", short, cores, 1, None),
               (f"Ray local, {cores} actors x 1 thread", short, cores, 1, "auto"),
               ("1 worker x 1 thread, one long file", long, 1, 1, None),
               (f"{cores} workers x 1 thread, one long file", long, cores, 1, None)]
    if not ray:
        layouts = [layout for layout in layouts if layout[4] is None]
    runs: dict[str, list[dict]] = {layout[0]: [] for layout in layouts}
    for _ in range(repeats):
        for label, corpus, workers, threads, on_ray in layouts:
            if on_ray is None:
                runs[label].append(_run(label, corpus, out, model, workers, threads))
                continue
            import ray as ray_module

            t0 = time.perf_counter()
            ray_module.init(num_cpus=cores, object_store_memory=200 << 20, include_dashboard=False, log_to_driver=False,
                            logging_level="warning")
            start = time.perf_counter() - t0
            try:
                row = _run(label, corpus, out, model, workers, threads, ray=on_ray)
            finally:
                ray_module.shutdown()
            row["ray_start_seconds"] = round(start, 1)
            runs[label].append(row)
    best = {label: _best(r) for label, r in runs.items()}
    rows = [best[layout[0]] for layout in layouts if layout[1] is short]
    reference = rows[0]["x_real_time"]
    for r in rows:
        r["scaling_efficiency"] = round(r["x_real_time"] / reference, 2)
    one_short, one_long = best["1 worker x 1 thread"], best["1 worker x 1 thread, one long file"]
    many_long = best[f"{cores} workers x 1 thread, one long file"]
    overhead = {"short_files": short_files, "short_seconds": short_seconds,
                "short_x_real_time": one_short["x_real_time"], "long_x_real_time": one_long["x_real_time"],
                "ratio": round(one_short["x_real_time"] / one_long["x_real_time"], 3),
                "ms_per_file": round(1000 * (one_short["wall_seconds"] - one_long["wall_seconds"]) / short_files, 2),
                "default_short_x_real_time": rows[2]["x_real_time"], "default_long_x_real_time": many_long["x_real_time"]}
    # The same question in CPU time, one worker in this process, short files against the long one.
    short_cpu = [worker_cpu_rate(model, short, out) for _ in range(repeats)]
    long_cpu = [worker_cpu_rate(model, long, out) for _ in range(repeats)]
    best_short = max(short_cpu, key=lambda r: r["cpu_x_real_time"])
    best_long = max(long_cpu, key=lambda r: r["cpu_x_real_time"])
    overhead["worker_cpu"] = {
        "short": best_short, "long": best_long,
        "ratio": round(best_short["cpu_x_real_time"] / best_long["cpu_x_real_time"], 3),
        "ms_per_file": round(1000 * (best_short["cpu_seconds"] - best_short["audio_seconds"] / best_long["cpu_x_real_time"])
                             / best_short["files"], 2)}
    print(f"  one worker in-process, CPU time: {best_short['cpu_x_real_time']}x per CPU second on the short files, "
          f"{best_long['cpu_x_real_time']}x on the long file", flush=True)
    return {"cores": cores, "model": str(model), "repeats": repeats, "rows": rows, "overhead": overhead}


def dataset_table(result: dict) -> str:
    """Markdown: the layouts, then the per-file overhead line."""
    lines = ["| layout | x real time (best; median) | files/s | scaling efficiency | x real time per CPU second | "
             "coordinator CPU per file (ms) | peak RSS per worker (MB) |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        extra = f" (+{r['ray_start_seconds']} s Ray start)" if "ray_start_seconds" in r else ""
        lines.append(f"| {r['layout']}{extra} | {r['x_real_time']}; {r['median_x_real_time']} | {r['files_per_second']} | "
                     f"{r['scaling_efficiency']} | {r['cpu_x_real_time'] or 'n/a (Ray)'} | {r['coordinator_cpu_ms_per_file']} | "
                     f"{r['peak_rss_mb']:.0f} |")
    o = result["overhead"]
    lines.append("")
    w = o["worker_cpu"]
    lines.append(f"Per-file overhead in CPU time (one worker, in process): {w['short']['files']} files of "
                 f"{o['short_seconds']:g} s at {w['short']['cpu_x_real_time']}x real time per CPU second against "
                 f"{w['long']['cpu_x_real_time']}x for the long file: {100 * w['ratio']:.0f}% (target >= 90%), "
                 f"{w['ms_per_file']} ms of CPU per file.")
    lines.append("")
    lines.append(f"End to end (wall clock, one single-threaded worker): {o['short_files']} files of {o['short_seconds']:g} s at "
                 f"{o['short_x_real_time']}x real time against {o['long_x_real_time']}x for one file of the same total "
                 f"length: {100 * o['ratio']:.0f}% (target >= 90%), {o['ms_per_file']} ms per file. With {result['cores']} "
                 f"workers: {o['default_short_x_real_time']}x on the short files; one long file keeps one worker busy "
                 f"({o['default_long_x_real_time']}x).")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEMO_MODEL_DIR)
    p.add_argument("--short-files", type=int, default=500)
    p.add_argument("--short-seconds", type=float, default=3.0)
    p.add_argument("--work", type=Path, default=Path("build/bench-dataset"))
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; each layout's best is reported")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray row (the cluster extra is not installed)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()
    result = dataset_rows(args.model, args.work, args.short_files, args.short_seconds, ray=not args.no_ray,
                          repeats=args.repeats)
    result["load"] = os.getloadavg()
    print(dataset_table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
