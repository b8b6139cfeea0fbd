"""The export's own checks, driven through the export: a graph with a custom or Flex op, a
FULLY_CONNECTED weight of the wrong dtype, or an op outside XNNPACK is refused with a message
naming it, and no model directory is written.

Each failure is injected into what the export inspects (the op report, the delegation report);
the fp32 graphs are the session's conversion of the tiny fixture (conftest.tiny_float_graphs).
"""

import pytest

from conftest import TEST_WINDOWS, TINY_CHECKPOINT, TINY_CONFIG


@pytest.fixture
def convert(monkeypatch, tiny_float_graphs):
    """The export module, its conversion answered from the session's fp32 graphs."""
    from same_edge_export import convert

    monkeypatch.setattr(convert, "convert_graph", lambda model, side, windows, timer=None: tiny_float_graphs[side])
    return convert


def export_tiny(convert, out, precisions=("fp32",)):
    """Fidelity on 1 s of music instead of 12 s: it does not change the graphs, and keeps these quick."""
    from same_edge_export.music import synth_music

    return convert.export_precisions(TINY_CONFIG, TINY_CHECKPOINT, out, precisions, TEST_WINDOWS,
                                     fidelity_audio=synth_music(1.0), progress=False)


def report_with(monkeypatch, convert, **changes):
    """Make the export's op inspection report ``changes`` over what it really finds."""
    inspect_ops = convert.inspect_ops
    monkeypatch.setattr(convert, "inspect_ops", lambda graph: {**inspect_ops(graph), **changes})


def delegation_reports(monkeypatch, report):
    """Make every delegation run of the export report ``report``."""
    from same_edge_export import delegation

    monkeypatch.setattr(delegation, "delegation_report", lambda graph_path, threads=1: report)


@pytest.mark.parametrize("op", ["CUSTOM:FlexErf", "CUSTOM:SameEdgeFusedAttention"])
def test_export_refuses_a_graph_with_a_flex_or_custom_op_and_writes_nothing(convert, monkeypatch, tmp_path, op):
    from same_edge_export import GraphCheckError

    report_with(monkeypatch, convert, custom_ops=[op])
    out = tmp_path / "model"
    with pytest.raises(GraphCheckError, match=rf"encoder\.tflite: non-builtin ops \['{op}'\]"):
        export_tiny(convert, out)
    assert not out.exists()


@pytest.mark.parametrize(("precision", "weights"), [
    ("w8a8", {"INT8": 9, "FLOAT32": 1}),  # one layer the recipe did not match
    ("w8a8", {"FLOAT32": 10}),  # a recipe that quantised nothing
    ("w4a8", {"INT4": 9, "FLOAT32": 1}),  # w4a8 may fall back to int8, never to float
    ("fp32", {"FLOAT32": 9, "FLOAT16": 1}),
])
def test_export_refuses_a_fully_connected_weight_outside_the_precisions_dtype_and_writes_nothing(
        convert, monkeypatch, tmp_path, precision, weights):
    from same_edge_export import GraphCheckError

    report_with(monkeypatch, convert, fully_connected_weights=weights)
    out = tmp_path / "model"
    with pytest.raises(GraphCheckError, match=rf"encoder\.tflite: {precision} expects every FULLY_CONNECTED weight "
                                              r"in \w+, found .*FLOAT"):
        export_tiny(convert, out, [precision])
    assert not out.exists()


@pytest.mark.parametrize(("report", "named"), [
    ({"partitions": {"encode_1": 2, "encode_2": 1, "encode_flush": 1}, "undelegated": ["encode_1: BROADCAST_TO"]},
     r"undelegated \['encode_1: BROADCAST_TO'\]"),
    ({"partitions": {"encode_1": 1, "encode_2": 3, "encode_flush": 1}, "undelegated": []},  # split, all in XNNPACK
     r"partitions \{'encode_2': 3\}"),
])
def test_export_refuses_a_graph_with_ops_outside_one_xnnpack_partition_and_writes_nothing(
        convert, monkeypatch, tmp_path, report, named):
    from same_edge_export import GraphCheckError

    delegation_reports(monkeypatch, report)
    out = tmp_path / "model"
    with pytest.raises(GraphCheckError, match=rf"encoder\.tflite: not every op runs in XNNPACK: .*{named}"):
        export_tiny(convert, out)
    assert not out.exists()


def test_a_precision_that_fails_its_check_gets_no_directory_while_those_written_before_it_stay(
        convert, monkeypatch, tmp_path):
    from same_edge_export import GraphCheckError

    inspect_ops = convert.inspect_ops

    def report(graph):  # the w8a8 graphs (int8 weights) come back with a Flex op
        found = inspect_ops(graph)
        return {**found, "custom_ops": ["CUSTOM:FlexErf"]} if "INT8" in found["fully_connected_weights"] else found

    monkeypatch.setattr(convert, "inspect_ops", report)
    with pytest.raises(GraphCheckError, match="non-builtin ops"):
        export_tiny(convert, tmp_path, ["fp32", "w8a8"])
    assert sorted(p.name for p in (tmp_path / "fp32").iterdir()) == [
        "decoder.tflite", "encoder.tflite", "fidelity.json", "manifest.json"]
    assert not (tmp_path / "w8a8").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["fp32"]  # no staging directory left behind


def test_export_command_prints_a_failed_check_as_one_error_line_and_exit_status_2(convert, monkeypatch, tmp_path,
                                                                                   capsys):
    from same_edge.cli import main

    report_with(monkeypatch, convert, custom_ops=["CUSTOM:FlexErf"])
    out = tmp_path / "model"
    rc = main(["export", "--config", str(TINY_CONFIG), "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out),
               "--windows", *map(str, TEST_WINDOWS), "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == "same-edge: error: encoder.tflite: non-builtin ops ['CUSTOM:FlexErf']\n"
    assert not out.exists()
