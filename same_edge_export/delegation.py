"""Every op of every exported signature must run in XNNPACK.

An op that XNNPACK's delegate does not take (``BROADCAST_TO`` and ``GATHER_ND`` were two) runs on
LiteRT's default kernels, which are far slower, and splits the graph into several delegate
partitions with copies between them. The check compiles the graph as the runtime does (LiteRT
``CompiledModel``, CPU accelerator), runs each signature once with LiteRT's profiler on, and reads
which nodes ran where (``same_edge_export.profiler``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import GraphCheckError
from .profiler import ProfiledGraph, ProfilerError


class DelegationError(GraphCheckError):
    """A signature runs ops outside XNNPACK."""


def delegation_report(graph_path: str | Path, threads: int = 1) -> dict[str, Any]:
    """``{"partitions": {signature: XNNPACK partitions}, "undelegated": ["signature: OP", ...]}``
    for the ``.tflite`` file at ``graph_path`` (one profiled call per signature)."""
    partitions: dict[str, int] = {}
    undelegated: list[str] = []
    with ProfiledGraph(graph_path, threads=threads) as graph:
        for name in graph.signatures:
            profile = graph.profile(name, runs=1, warmup=0)
            partitions[name] = profile.partitions
            undelegated += [f"{name}: {op}" for op in profile.undelegated]
    return {"partitions": partitions, "undelegated": undelegated}


def check_delegation(graph_path: str | Path, threads: int = 1) -> dict[str, Any]:
    """``delegation_report``, raising ``DelegationError`` (naming the ops) unless every op of every
    signature ran in XNNPACK, in one partition per signature."""
    try:
        report = delegation_report(graph_path, threads)
    except ProfilerError as e:  # LiteRT refused the file: a broken graph, not a crash
        raise GraphCheckError(f"{Path(graph_path).name}: LiteRT cannot run it ({e})") from None
    split = {name: n for name, n in report["partitions"].items() if n != 1}
    if report["undelegated"] or split:
        ops = sorted(set(report["undelegated"]))
        raise DelegationError(f"{Path(graph_path).name}: not every op runs in XNNPACK: undelegated {ops or 'none'}, "
                              f"partitions {split or 'one per signature'}")
    return report
