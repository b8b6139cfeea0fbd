"""Outputs stay bit-identical to the recorded ones: on the bundled demo model and on the tiny
fixture's fp32 export (``tests/data/reference_outputs.json`` says when they were recorded)."""

import hashlib
import json

import numpy as np
import pytest

from conftest import DATA
from same_edge import Codec
from same_edge.audio import read_audio
from same_edge.models import DEMO_MODEL_DIR

REFERENCE = json.loads((DATA / "reference_outputs.json").read_text())


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, np.float32).tobytes()).hexdigest()


@pytest.mark.parametrize("threads", [1, 2])
def test_the_demo_model_encodes_and_decodes_its_clip_exactly_as_recorded(threads):
    codec = Codec.load(DEMO_MODEL_DIR, threads=threads)
    clip = read_audio(DEMO_MODEL_DIR / "clip.flac", codec.sample_rate)[0][:, :220623]
    z = codec.encode(clip)
    assert _sha256(z) == REFERENCE["demo"]["encode"]
    assert _sha256(codec.decode(z)) == REFERENCE["demo"]["decode_of_encode"]


def test_the_tiny_fixture_export_encodes_and_decodes_exactly_as_recorded(export_dir):
    codec = Codec.load(export_dir("fp32"), threads=2)
    audio = np.random.default_rng(2026).normal(0, 0.1, (2, 3 * 8192 + 77)).astype(np.float32)
    z = codec.encode(audio)
    assert _sha256(z) == REFERENCE["tiny_fp32"]["encode"]
    assert _sha256(codec.decode(z)) == REFERENCE["tiny_fp32"]["decode_of_encode"]
