"""Per-op profile of one exported signature: where a call's time goes, op type by op type.

    python benchmarks/op_profile.py MODEL_DIR SIGNATURE [SIGNATURE ...] [--threads 2] [--runs 10]
    python benchmarks/op_profile.py MODEL_DIR SIGNATURE ... --against BEFORE_DIR [--rounds 3]

MODEL_DIR is a directory written by ``same-edge export`` (the graph is chosen by the signature:
``encode_*`` in ``encoder.tflite``, ``decode_*`` in ``decoder.tflite``) or a ``.tflite`` file.
Prints a Markdown table per op type (nodes, ms per call, share of the nodes' time), the fully
connected share of the call (the FC floor: a call can be no faster than its matrix multiplies),
the highest share graph shaping could reach (``fc_floor_bound``: FC time over FC time plus the ops
no shaping removes) and every op that XNNPACK did not take. ``--against`` compares two exports of the same model
(before and after a graph change): both are profiled in turn, round after round, so that the
machine's drift hits both alike, and the medians are printed side by side. Uses LiteRT's own profiler through ctypes
(``same_edge_export.profiler``): no torch. (Not ``profile.py``: a script there would shadow the standard
library's ``profile``, which ``cProfile`` and so torch import.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from same_edge_export.profiler import Profile, ProfiledGraph, ProfilerError

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


# Op types no graph shaping removes: attention's maps (batch matmuls in F32, softmax, the
# differential subtraction) and the nonlinearities (DyT's tanh, SwiGLU's sigmoid).
IRREDUCIBLE_OPS = ("Batch Matrix Multiply", "BATCH_MATMUL", "Softmax", "SOFTMAX", "TanH", "TANH", "Sigmoid", "LOGISTIC",
                   "Subtract", "SUB")


def fc_floor_bound(row: dict) -> float:
    """The highest FC / end-to-end share graph shaping could reach with these kernels: FC time over
    FC time plus the irreducible ops' time (every layout and elementwise op free)."""
    irreducible = sum(o["ms"] for o in row["ops"] if o["op"].startswith(IRREDUCIBLE_OPS))
    return row["fc_ms"] / (row["fc_ms"] + irreducible) if row["fc_ms"] else 0.0


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
    lines = ["| precision | signature | ms per call | nodes ms | fully connected ms | FC / end to end | "
             "FC / end to end bound | non-FC ms | XNNPACK partitions | not delegated |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | `{r['signature']}` | {r['wall_ms']:.2f} | {r['node_ms']:.2f} | {r['fc_ms']:.2f} | "
                     f"{100 * r['fc_floor_ratio']:.0f}% | {100 * fc_floor_bound(r):.0f}% | {r['wall_ms'] - r['fc_ms']:.2f} | "
                     f"{r['partitions']} | {', '.join(sorted(set(r['undelegated']))) or 'none'} |")
    return "\n".join(lines)


def op_table(row: dict, top: int | None = None) -> str:
    """Per-op-type table of one profiled signature."""
    lines = [f"{row['precision']} `{row['signature']}`, {row['threads']} threads, {row['wall_ms']:.2f} ms per call "
             f"(mean of {row['runs']}):\n", "| op | nodes | ms per call | share |", "|---|---|---|---|"]
    ops = row["ops"][:top] if top else row["ops"]
    lines += [f"| {o['op']} | {o['nodes']} | {o['ms']:.3f} | {100 * o['share']:.1f}% |" for o in ops]
    return "\n".join(lines)


def compare_rows(before: Path, after: Path, signatures: tuple[str, ...], threads: int = 2, runs: int = 10,
                 rounds: int = 3) -> list[dict]:
    """Per signature, before and after profiled alternately ``rounds`` times: the medians of
    wall ms, FC ms and non-FC ms per call, the FC floor ratio and the node counts of each."""
    samples: dict[tuple[str, str], list[dict]] = {}
    for _ in range(rounds):
        for signature in signatures:
            for name, model in (("before", before), ("after", after)):
                for row in profile_rows({name: graph_path(model, signature)}, (signature,), threads, runs):
                    samples.setdefault((signature, name), []).append(row)
    out = []
    for signature in signatures:
        side = {}
        for name in ("before", "after"):
            rows = samples.get((signature, name), [])
            if not rows:
                break
            wall = statistics.median(r["wall_ms"] for r in rows)
            fc = statistics.median(r["fc_ms"] for r in rows)
            side[name] = {"wall_ms": wall, "fc_ms": fc, "non_fc_ms": wall - fc, "fc_floor_ratio": fc / wall,
                          "nodes": sum(o["nodes"] for o in rows[0]["ops"]), "partitions": rows[0]["partitions"]}
        if len(side) == 2:
            out.append({"signature": signature, "threads": threads, "rounds": rounds, **side})
    return out


def compare_table(rows: list[dict]) -> str:
    """One line per signature: before / after."""
    lines = ["| signature | ms per call | FC ms | non-FC ms | FC / end to end | nodes |", "|---|---|---|---|---|---|"]
    for r in rows:
        b, a = r["before"], r["after"]
        lines.append(f"| `{r['signature']}` | {b['wall_ms']:.2f} / {a['wall_ms']:.2f} | {b['fc_ms']:.2f} / {a['fc_ms']:.2f} | "
                     f"{b['non_fc_ms']:.2f} / {a['non_fc_ms']:.2f} | {100 * b['fc_floor_ratio']:.0f}% / "
                     f"{100 * a['fc_floor_ratio']:.0f}% | {b['nodes']} / {a['nodes']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="model directory (or .tflite file)")
    p.add_argument("signatures", nargs="+", metavar="signature", help="e.g. decode_16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10, help="calls per profile")
    p.add_argument("--against", type=Path, help="an earlier export of the same model to compare with")
    p.add_argument("--rounds", type=int, default=3, help="alternating profiles per signature with --against")
    args = p.parse_args(argv)
    try:
        if min(args.threads, args.runs, args.rounds) < 1:
            raise ProfilerError("--threads, --runs and --rounds must be positive")
        for model in (args.model, args.against) if args.against else (args.model,):
            for signature in args.signatures:
                if not graph_path(model, signature).is_file():
                    raise ProfilerError(f"{graph_path(model, signature)} not found")
        if args.against:
            rows = compare_rows(args.against, args.model, tuple(args.signatures), args.threads, args.runs, args.rounds)
        else:
            label = (args.model if args.model.is_dir() else args.model.parent).name
            rows = [r for s in args.signatures
                    for r in profile_rows({label: graph_path(args.model, s)}, (s,), args.threads, args.runs)]
        missing = set(args.signatures) - {r["signature"] for r in rows}
        if missing:
            raise ProfilerError(f"{args.model} has no signature {', '.join(sorted(missing))}")
    except ProfilerError as e:
        print(f"op_profile: error: {e}", file=sys.stderr)
        return 2
    if args.against:
        print(f"before: {args.against}, after: {args.model}; {args.threads} threads, median of {args.rounds} "
              f"alternating profiles of {args.runs} calls each\n")
        print(compare_table(rows))
        return 0
    for row in rows:
        print(op_table(row) + "\n")
        print(f"fully connected: {row['fc_ms']:.2f} ms of {row['wall_ms']:.2f} ms per call "
              f"({100 * row['fc_floor_ratio']:.0f}% of end to end); {row['partitions']} XNNPACK partition(s)")
        print(f"bound from the ops no graph shaping removes (batch matmul, softmax, tanh, sigmoid, subtract): "
              f"{100 * fc_floor_bound(row):.0f}% of end to end")
        print("not delegated to XNNPACK: " + (", ".join(row["undelegated"]) or "none") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
