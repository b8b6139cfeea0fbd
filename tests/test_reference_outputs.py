"""Outputs stay where they were recorded, on any CPU: the bundled demo model (w8a8) and the tiny
fixture's fp32 export against the arrays in ``tests/data/reference_outputs.npz``, within the
tolerances ``tests/reference_outputs.py`` derives; a deliberate change of the graph fails them."""

import shutil

import numpy as np
import pytest

from graph_edit import move_weight, swap_last_op
from reference_outputs import demo_input, demo_outputs, mismatches, outputs, tiny_input, tiny_outputs
from same_edge import Codec
from same_edge.models import DEMO_MODEL_DIR


@pytest.fixture(scope="module")
def demo() -> dict[str, np.ndarray]:
    return demo_outputs(threads=2)


def test_the_demo_model_encodes_and_decodes_its_clip_as_recorded(demo):
    assert mismatches("demo", demo) == []


def test_the_tiny_fixture_export_encodes_and_decodes_as_recorded(export_dir):
    assert mismatches("tiny_fp32", tiny_outputs(export_dir("fp32"))) == []


def test_one_thread_computes_exactly_what_two_threads_compute(demo, export_dir):
    for one, two in ((demo_outputs(threads=1), demo),
                     (tiny_outputs(export_dir("fp32"), threads=1), tiny_outputs(export_dir("fp32"), threads=2))):
        for key in two:
            np.testing.assert_array_equal(one[key], two[key])


def test_one_fp32_weight_moved_by_1e_3_fails_the_reference(export_dir, tmp_path):
    edited = tmp_path / "moved"
    shutil.copytree(export_dir("fp32"), edited)
    moved = move_weight(edited, "encoder", layer=0, delta=1e-3)
    failures = mismatches("tiny_fp32", outputs(Codec.load(edited, threads=2), tiny_input()))
    assert "tiny_fp32 encode" in [line.split(":")[0] for line in failures], moved


def test_one_op_of_the_w8a8_graphs_changed_fails_the_reference(tmp_path):
    edited = tmp_path / "demo"
    shutil.copytree(DEMO_MODEL_DIR, edited)
    assert swap_last_op(edited, "decoder", "TANH", "LOGISTIC") == 4  # decode_1, _4, _16 and _flush
    codec = Codec.load(edited, threads=2)
    failures = mismatches("demo", outputs(codec, demo_input(codec.sample_rate)))
    assert [line.split(":")[0] for line in failures] == ["demo decode"]  # the encoder is untouched
