"""Every op of every exported signature runs in XNNPACK, and the export says so (or refuses)."""

from __future__ import annotations

import json

import pytest

from same_edge_export.profiler import ProfiledGraph, parse_summary

# Rows of a LiteRT profile summary's Run Order table (node type, start, first, avg ms, %, cdf%,
# mem KB, times called, name): two XNNPACK partitions around one op left to the default kernels.
_COLUMNS = "0.000 {ms} {ms} 1.000% 1.000% 0.000 5"
_ROWS = [("Delegate/Fully Connected (NC, QD8, F32, QC8W) GEMM", "0.031", "[Delegate]:0"),
         ("Delegate/Multiply (ND)", "0.020", "[Delegate]:1"),
         ("BROADCAST_TO", "1.597", "[Builtin]:4"),
         ("Delegate/Copy (NC, X32)", "0.059", "[Delegate]:0")]
SUMMARY = "\n".join(
    ["=" * 20 + " Run Order " + "=" * 20, "[node type] [start] [first] [avg ms] [%] [cdf%] [mem KB] [times called] [Name]"]
    + [f"{op:>60}    {_COLUMNS.format(ms=ms)}   {name}" for op, ms, name in _ROWS]
    + ["=" * 20 + " Top by Computation Time " + "=" * 20, f"BROADCAST_TO    {_COLUMNS.format(ms='1.597')}   [Builtin]:4"])


def test_profile_summary_rows_become_nodes_with_partitions_and_undelegated_ops():
    nodes = parse_summary(SUMMARY)
    assert [(n.op, n.delegated) for n in nodes] == [("Fully Connected (NC, QD8, F32, QC8W) GEMM", True),
                                                    ("Multiply (ND)", True), ("BROADCAST_TO", False),
                                                    ("Copy (NC, X32)", True)]
    assert nodes[2].ms == pytest.approx(1.597)
    from same_edge_export.profiler import Profile

    profile = Profile("s", runs=5, wall_ms=2.0, nodes=nodes)
    assert profile.partitions == 2 and profile.undelegated == ["BROADCAST_TO"]
    assert profile.fully_connected_ms() == pytest.approx(0.031)
    assert profile.by_type()[0][:2] == ("BROADCAST_TO", 1)


@pytest.mark.parametrize("precision", ["fp32", "w8a8"])
def test_exported_signatures_run_entirely_in_one_xnnpack_partition(export_dir, precision):
    out = export_dir(precision)
    manifest = json.loads((out / "manifest.json").read_text())
    for side, prefix in (("encoder", "encode"), ("decoder", "decode")):
        delegation = manifest[side]["delegation"]
        assert delegation["undelegated"] == []
        assert delegation["partitions"] == {f"{prefix}_{w}": 1 for w in ("1", "2", "flush")}
        with ProfiledGraph(out / f"{side}.tflite", threads=1) as graph:  # measured again, not just reported
            for name in graph.signatures:
                profile = graph.profile(name, runs=1, warmup=0)
                assert profile.undelegated == [], (name, profile.undelegated)
                assert profile.partitions == 1 and profile.fully_connected_ms() > 0


def test_delegation_check_names_an_op_that_xnnpack_does_not_take(tmp_path):
    import torch

    from same_edge_export.delegation import DelegationError, check_delegation, delegation_report

    class Broadcast(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(x).expand(3, 8) * 2.0  # expand lowers to BROADCAST_TO

    from same_edge.graph import stderr_silenced

    with stderr_silenced():
        import litert_torch

        path = tmp_path / "broadcast.tflite"
        litert_torch.signature("f", Broadcast().eval(), sample_kwargs={"x": torch.zeros(1, 8)}).convert().export(str(path))
    report = delegation_report(path)
    assert report["undelegated"] == ["f: BROADCAST_TO"]
    with pytest.raises(DelegationError, match="BROADCAST_TO"):
        check_delegation(path)
