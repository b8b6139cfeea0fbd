"""Exported graphs: golden parity, built-in ops, every precision, self-description, fidelity."""

import json

import numpy as np
import pytest

from conftest import GOLDEN_CASES, GRAPH_TOLERANCE, TEST_WINDOWS, TINY_CHECKPOINT, TINY_CONFIG, rel_err
from same_edge import Codec
from same_edge.manifest import METADATA_KEY, read_embedded_manifest, read_manifest

PRECISIONS = ("fp32", "w16a32", "w8a32", "w8a8", "w4a8")
WEIGHT_DTYPE = {"fp32": "FLOAT32", "w16a32": "FLOAT16", "w8a32": "INT8", "w8a8": "INT8", "w4a8": "INT4"}


@pytest.fixture(scope="module")
def fp32_codec(export_dir):
    return Codec.load(export_dir("fp32"))


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_fp32_graphs_encode_like_official_golden(fp32_codec, golden, case):
    audio = golden[f"audio{case}"]
    z = fp32_codec.encode(audio)
    assert z.shape[1] == -(-audio.shape[1] // 4096)  # only the frames that cover real audio
    assert rel_err(golden[f"latents{case}"][:, : z.shape[1]], z) <= GRAPH_TOLERANCE


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_fp32_graphs_decode_like_official_golden(fp32_codec, golden, case):
    z = golden[f"zin{case}"]
    y = fp32_codec.decode(z)
    assert y.shape == (2, z.shape[1] * 4096)
    assert rel_err(golden[f"decoded{case}"][:, : y.shape[1]], y) <= GRAPH_TOLERANCE


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_exports_builtin_ops_with_its_weight_dtype_and_fidelity(export_dir, precision):
    out = export_dir(precision)
    manifest = json.loads((out / "manifest.json").read_text())
    fidelity = json.loads((out / "fidelity.json").read_text())
    for side in ("encoder", "decoder"):
        ops = manifest[side]["ops"]
        assert ops["custom_ops"] == []
        weights = ops["fully_connected_weights"]
        assert WEIGHT_DTYPE[precision] in weights
        # w4a8 keeps layers whose width is not a multiple of the int4 block (tiny only) in int8
        assert set(weights) <= ({"INT4", "INT8"} if precision == "w4a8" else {WEIGHT_DTYPE[precision]})
        assert fidelity[side]["snr_db"] > (100 if precision == "fp32" else 15)
        assert np.isfinite(fidelity[side]["max_abs_error"])
    assert manifest["precision"] == fidelity["precision"] == precision
    assert "music" in fidelity["signal"]


def test_quantised_graphs_are_smaller_than_fp32(export_dir):
    size = {p: (export_dir(p) / "encoder.tflite").stat().st_size for p in ("fp32", "w16a32", "w8a8", "w4a8")}
    assert size["w4a8"] < size["w8a8"] < size["w16a32"] < size["fp32"]


def test_manifest_describes_every_signature_and_is_embedded_in_each_graph(export_dir):
    out = export_dir("fp32")
    manifest = read_manifest(out)
    spec = manifest.model
    assert (spec.sample_rate, spec.latent_dim, spec.hop, manifest.windows) == (44100, 8, 4096, (1, 2))
    raw = json.loads((out / "manifest.json").read_text())
    assert set(raw["encoder"]["signatures"]) == {"encode_1", "encode_2", "encode_flush"}
    assert set(raw["decoder"]["signatures"]) == {"decode_1", "decode_2", "decode_flush"}
    assert raw["encoder"]["signatures"]["encode_2"]["inputs"]["audio"] == [2, 16384]
    assert raw["decoder"]["signatures"]["decode_1"]["outputs"]["audio"] == [2, 8192]
    assert raw["encoder"]["state_shape"] == [1, 17, 32]
    assert raw["source"]["checkpoint_sha256"] and raw["tools"]["litert-torch"].startswith("0.10")
    for side in ("encoder", "decoder"):
        embedded = read_embedded_manifest(out / f"{side}.tflite")
        assert embedded is not None and embedded["source"] == raw["source"] and "sha256" not in embedded[side]
    assert METADATA_KEY == "same_edge.manifest"


def test_graph_signatures_share_one_copy_of_the_weights(export_dir):
    """Every signature's FULLY_CONNECTED weights point into one set of buffers."""
    from ai_edge_litert import schema_py_generated as schema

    for side in ("encoder", "decoder"):
        m = schema.Model.GetRootAsModel((export_dir("fp32") / f"{side}.tflite").read_bytes(), 0)
        fc = [i for i in range(m.OperatorCodesLength()) if m.OperatorCodes(i).BuiltinCode() == 9]  # FULLY_CONNECTED
        per_signature = []
        for s in range(m.SubgraphsLength()):
            sg = m.Subgraphs(s)
            ops = (sg.Operators(o) for o in range(sg.OperatorsLength()))
            per_signature.append({sg.Tensors(op.Inputs(1)).Buffer() for op in ops if op.OpcodeIndex() in fc})
        assert len(per_signature) == 3
        assert set().union(*per_signature) == max(per_signature, key=len)


@pytest.mark.slow
def test_export_command_writes_a_complete_model_dir_per_precision_from_one_real_conversion(tmp_path, export_dir):
    """The CLI end to end (one small conversion, two precisions): files, exit status, and graphs
    byte-identical to single-precision exports of the session's own conversion."""
    import hashlib

    from same_edge.cli import main

    out = tmp_path / "cli-export"
    rc = main(["export", "--config", str(TINY_CONFIG), "--checkpoint", str(TINY_CHECKPOINT), "--precision", "fp32,w8a8",
               "--windows", *map(str, TEST_WINDOWS), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["fp32", "w8a8"]
    for precision in ("fp32", "w8a8"):
        assert sorted(p.name for p in (out / precision).iterdir()) == [
            "decoder.tflite", "encoder.tflite", "fidelity.json", "manifest.json"]
        for graph in ("encoder.tflite", "decoder.tflite"):
            assert hashlib.sha256((out / precision / graph).read_bytes()).digest() == \
                hashlib.sha256((export_dir(precision) / graph).read_bytes()).digest()


def test_export_of_a_mismatched_checkpoint_fails_cleanly_and_writes_nothing(tmp_path, capsys):
    from conftest import SAME_S_CONFIG
    from same_edge.cli import main

    out = tmp_path / "never"
    rc = main(["export", "--config", str(SAME_S_CONFIG), "--checkpoint", str(TINY_CHECKPOINT), "--out", str(out),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("same-edge: error: checkpoint does not match the config")
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
