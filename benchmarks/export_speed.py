"""How long an export takes, and where: ``same-edge export --verbose`` of a checkpoint in a fresh
process per row (no conversion cache), its wall time, its peak RSS and its phase table.

    python benchmarks/export_speed.py --config models/same-s/model_config.json --out build/export-speed

Rows, in one run on one machine:
  - w8a8, the default windows 1, 4, 16;
  - all five precisions from one conversion;
  - fp32 with the streaming window only (what ``tests/test_same_s.py`` exports);
  - w8a8 before the weight folding: the exporter with ``folded_copy`` replaced by the identity, so
    that the converter folds the weight-derived tensors in every signature again, as every export
    did before the fold.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs the CLI in the child; with "unfolded", as the exporter ran before the weight folding.
_DRIVER = """
import sys
if sys.argv[1] == "unfolded":
    import same_edge_export.convert as convert
    convert.folded_copy = lambda model: model
from same_edge.cli import main
sys.exit(main(sys.argv[2:]))
"""

ROWS = (  # (name, precision argument, windows, fold); the slow "before" last, to read the rest early
    ("w8a8", "w8a8", (1, 4, 16), True),
    ("all five precisions, one conversion", "all", (1, 4, 16), True),
    ("fp32, window 1 only (the SAME-S test's export)", "fp32", (1,), True),
    ("w8a8 before the weight folding", "w8a8", (1, 4, 16), False),
)


def phase_totals(table: str) -> dict[str, float]:
    """``PhaseTimer.table()`` text -> seconds per phase, summed over windows and sides."""
    totals: dict[str, float] = {}
    for line in table.splitlines()[1:]:
        name = line[:28].strip()
        if name and name != "total":
            totals[name] = totals.get(name, 0.0) + float(line.split()[-1])
    return totals


def export_row(config: Path, checkpoint: Path, precision: str, windows: tuple[int, ...], fold: bool,
               work: Path) -> dict:
    """One export in a child process: wall seconds, peak RSS (GB) and its phase totals."""
    with tempfile.TemporaryDirectory(dir=work) as out:
        argv = [sys.executable, "-c", _DRIVER, "folded" if fold else "unfolded", "export", "--config", str(config),
                "--checkpoint", str(checkpoint), "--precision", precision, "--windows", *map(str, windows),
                "--out", out, "--no-cache", "--quiet", "--verbose"]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"export failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("phase "))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith("total"))
    table = "\n".join(lines[first : last + 1])
    # `--verbose` ends with the process's peak RSS: "peak RSS 2.10 GB".
    rss = next(float(line.split()[2]) for line in lines if line.startswith("peak RSS"))
    return {"precision": precision, "windows": list(windows), "fold": fold, "seconds": seconds,
            "phases": phase_totals(table), "table": table, "stdout": done.stdout.strip(), "peak_rss_gb": rss}


def export_rows(config: Path, checkpoint: Path, work: Path, quick: bool = False) -> list[dict]:
    """Every row of ``ROWS``; ``quick`` (a smoke run): window 1 only, and not every precision. The
    rows so far are kept in ``work/export_speed.json`` as each finishes (a long run's partial result)."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, precision, windows, fold in ROWS:
        if quick:
            if precision == "all":
                continue
            windows = (1,)
        print(f"export: {name} ...", flush=True)
        rows.append({"name": name, **export_row(config, checkpoint, precision, windows, fold, work)})
        print(f"  {rows[-1]['seconds']:.0f} s, peak RSS {rows[-1]['peak_rss_gb']:.2f} GB", flush=True)
        (work / "export_speed.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def export_table(rows: list[dict]) -> str:
    """Markdown: each row's wall time, the conversion's share, peak RSS, and the speed-up of the
    folded w8a8 export over the unfolded one of the same run."""
    conversion = ("trace", "pre-convert decompositions", "FX passes", "lowering", "pre-lower decompositions",
                  "merge MLIR modules", "MLIR passes", "serialisation")
    out = ["| export | wall s | conversion s | of which MLIR passes s | peak RSS GB |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        conv = sum(r["phases"].get(p, 0.0) for p in conversion)
        out.append(f"| {r['name']} | {r['seconds']:.0f} | {conv:.0f} | {r['phases'].get('MLIR passes', 0.0):.0f} | "
                   f"{r['peak_rss_gb']:.2f} |")
    before = next((r for r in rows if not r["fold"]), None)
    after = next((r for r in rows if r["fold"] and r["precision"] == before["precision"]), None) if before else None
    if before and after:
        out.append(f"\nw8a8 export {before['seconds'] / after['seconds']:.1f}x faster with the weights folded "
                   f"({before['seconds']:.0f} s -> {after['seconds']:.0f} s, same run).")
    return "\n".join(out)


def main() -> None:
    from same_edge_export.random_weights import write_seeded_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, help="default: seeded weights in the official layout")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint or write_seeded_checkpoint(args.config, args.out / "seeded.safetensors", seed=0)
    print(export_table(export_rows(args.config, checkpoint, args.out)))


if __name__ == "__main__":
    main()
