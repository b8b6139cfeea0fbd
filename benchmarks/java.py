"""The Java binding's cost per call against C's, on one model, in one run: N pushes of one chunk
(one graph call each) into a live encoder stream, and N empty pushes (the call alone), through
``se_stream_push`` from C and through the three Java push paths (``bindings/java/build.sh bench``:
bench/se_push_bench.c, then bench/Bench.java).

    python benchmarks/java.py [--model models/demo] [--calls 300] [--threads 2]

``measure()`` returns the rows (``benchmarks/run.py`` calls it); ``table()`` formats them.
Needs ``make java``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(C|Java)\s+(.+?) (one chunk|0 frames)\s+median\s+([\d.]+) us\s+mean\s+([\d.]+) us", re.M)


def measure(model_dir: Path, calls: int = 300, threads: int = 2) -> dict:
    """Median and mean microseconds per push, by path ("C se_stream_push", "Java push(float[])", ...)."""
    done = subprocess.run(["bash", str(ROOT / "bindings" / "java" / "build.sh"), "bench", str(model_dir), str(calls),
                           str(threads)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"bindings/java/build.sh bench failed: {done.stderr.strip()[-2000:]}")
    paths: dict[str, dict[str, float]] = {}
    for side, what, size, median, mean in LINE.findall(done.stdout):
        row = paths.setdefault(f"{side} {what}", {})
        key = "chunk" if size == "one chunk" else "empty"
        row[f"{key}_median_us"], row[f"{key}_mean_us"] = float(median), float(mean)
    if not any(p.startswith("C ") for p in paths) or not any(p.startswith("Java ") for p in paths):
        raise RuntimeError(f"bindings/java/build.sh bench printed no C and Java rows:\n{done.stdout}")
    return {"model": str(model_dir), "calls": calls, "threads": threads, "paths": paths}


def table(r: dict) -> str:
    """The rows as Markdown, each with its cost over C's (empty pushes: the call alone)."""
    c = next(v for k, v in r["paths"].items() if k.startswith("C "))
    lines = [f"Pushes into a window-1 encoder stream, {r['model']}, {r['threads']} thread(s), {r['calls']} calls each:",
             "", "| path | one chunk, median (mean) us | empty push, median us | empty push over C's, us |",
             "|---|---|---|---|"]
    for path, v in r["paths"].items():
        lines.append(f"| {path} | {v['chunk_median_us']:.0f} ({v['chunk_mean_us']:.0f}) | {v['empty_median_us']:.2f} | "
                     f"{v['empty_median_us'] - c['empty_median_us']:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "models" / "demo")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    print(table(measure(args.model, args.calls, args.threads)))


if __name__ == "__main__":
    main()
