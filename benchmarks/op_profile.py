"""Per-op profile of one exported signature: where a call's time goes, op type by op type.

    python benchmarks/op_profile.py MODEL_DIR SIGNATURE [--threads 2] [--runs 10]

MODEL_DIR is a directory written by ``same-edge export`` (the graph is chosen by the signature:
``encode_*`` in ``encoder.tflite``, ``decode_*`` in ``decoder.tflite``) or a ``.tflite`` file.
Prints a Markdown table per op type (nodes, ms per call, share of the nodes' time), the fully
connected share of the call (the FC floor: a call can be no faster than its matrix multiplies),
and every op that XNNPACK did not take. Uses LiteRT's own profiler through ctypes
(``same_edge.profiler``): no torch. (Not ``profile.py``: a script there would shadow the standard
library's ``profile``, which ``cProfile`` and so torch import.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from same_edge.profiler import Profile, ProfiledGraph, ProfilerError

PROFILED_SIGNATURES = ("encode_1", "encode_16", "decode_1", "decode_16")


def graph_path(model: Path, signature: str) -> Path:
    """The ``.tflite`` file holding ``signature`` (``model`` a model directory or a graph file)."""
    if model.is_file():
        return model
    side = {"encode": "encoder", "decode": "decoder"}.get(signature.split("_", 1)[0])
    if side is None:
        raise ProfilerError(f"signature {signature!r} is neither encode_* nor decode_*")
    return model / f"{side}.tflite"


def fc_floor_ratio(profile: Profile) -> float:
    """Fully connected ms / end-to-end ms of a call: 1.0 would be a graph that only multiplies."""
    return profile.fully_connected_ms() / profile.wall_ms if profile.wall_ms else 0.0


def profile_rows(dirs: dict[str, Path], signatures: tuple[str, ...] = PROFILED_SIGNATURES, threads: int = 2,
                 runs: int = 10) -> list[dict]:
    """One row per (precision, signature): wall and node ms per call, FC ms, the FC floor ratio,
    partitions, undelegated ops and the per-op-type table (op, nodes, ms, share)."""
    rows = []
    for precision, d in dirs.items():
        for signature in signatures:
            with ProfiledGraph(graph_path(d, signature), threads=threads) as graph:
                if signature not in graph.signatures:
                    continue
                p = graph.profile(signature, runs=runs)
            rows.append({"precision": precision, "signature": signature, "threads": threads, "runs": runs,
                         "wall_ms": p.wall_ms, "node_ms": p.node_ms, "fc_ms": p.fully_connected_ms(),
                         "fc_floor_ratio": fc_floor_ratio(p), "partitions": p.partitions, "undelegated": p.undelegated,
                         "ops": [{"op": op, "nodes": n, "ms": ms, "share": share} for op, n, ms, share in p.by_type()]})
    return rows


def profile_summary_table(rows: list[dict]) -> str:
    """One line per profiled signature: totals, FC floor ratio, delegation."""
    lines = ["| precision | signature | ms per call | nodes ms | fully connected ms | FC / end to end | non-FC ms | "
             "XNNPACK partitions | not delegated |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | `{r['signature']}` | {r['wall_ms']:.2f} | {r['node_ms']:.2f} | {r['fc_ms']:.2f} | "
                     f"{100 * r['fc_floor_ratio']:.0f}% | {r['wall_ms'] - r['fc_ms']:.2f} | {r['partitions']} | "
                     f"{', '.join(sorted(set(r['undelegated']))) or 'none'} |")
    return "\n".join(lines)


def op_table(row: dict, top: int | None = None) -> str:
    """Per-op-type table of one profiled signature."""
    lines = [f"{row['precision']} `{row['signature']}`, {row['threads']} threads, {row['wall_ms']:.2f} ms per call "
             f"(mean of {row['runs']}):\n", "| op | nodes | ms per call | share |", "|---|---|---|---|"]
    ops = row["ops"][:top] if top else row["ops"]
    lines += [f"| {o['op']} | {o['nodes']} | {o['ms']:.3f} | {100 * o['share']:.1f}% |" for o in ops]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="model directory (or .tflite file)")
    p.add_argument("signature", help="e.g. decode_16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args(argv)
    try:
        if args.threads < 1 or args.runs < 1:
            raise ProfilerError("--threads and --runs must be positive")
        path = graph_path(args.model, args.signature)
        if not path.is_file():
            raise ProfilerError(f"{path} not found")
        rows = profile_rows({path.parent.name: path}, (args.signature,), args.threads, args.runs)
        if not rows:
            raise ProfilerError(f"{path} has no signature {args.signature!r}")
    except ProfilerError as e:
        print(f"op_profile: error: {e}", file=sys.stderr)
        return 2
    row = rows[0]
    print(op_table(row) + "\n")
    print(f"fully connected: {row['fc_ms']:.2f} ms of {row['wall_ms']:.2f} ms per call "
          f"({100 * row['fc_floor_ratio']:.0f}% of end to end); {row['partitions']} XNNPACK partition(s)")
    print("not delegated to XNNPACK: " + (", ".join(row["undelegated"]) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
