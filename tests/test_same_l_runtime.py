"""SAME-L exported and run: `same-edge export` writes sliding-window graphs at every precision, the
manifest says how to drive them, and the same runtime (Codec, streams, both command lines,
encode-dataset) runs them unchanged: the official golden through the fp32 graphs, and streams equal
to offline bit for bit whatever the push sizes and windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import GRAPH_TOLERANCE, TEST_L_WINDOWS, TINY_L, TINY_L_CHECKPOINT, TINY_L_CONFIG, rel_err
from same_edge import Codec
from same_edge.manifest import PRECISIONS
from same_edge.sliding import stream_key_bias

CASES = (0, 1, 2)  # the golden's audio of 13, 7 and 1 frames, latents of 11, 4 and 1


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(TINY_L / "golden.npz") as g:
        return {k: g[k] for k in g}


@pytest.fixture(scope="module")
def fp32(export_l_dir) -> Path:
    return export_l_dir("fp32")


@pytest.fixture(scope="module")
def codec(fp32):
    with Codec.load(fp32, threads=2) as c:
        yield c


def _music(codec: Codec, samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / codec.sample_rate
    tone = 0.4 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 0.7 * t)
    return (tone + 0.05 * rng.standard_normal((codec.channels, samples))).astype(np.float32)


def _streamed(stream, x: np.ndarray, rng: np.random.Generator, largest_push: int) -> np.ndarray:
    parts, at = [], 0
    while at < x.shape[1]:
        n = int(rng.integers(1, largest_push + 1))
        parts.append(stream.push(x[:, at : at + n]))
        at += n
    parts.append(stream.flush())
    return np.concatenate(parts, axis=1)


def test_the_manifest_says_sliding_attention_its_window_and_the_lag_to_skip_and_flush(codec, fp32):
    m, cfg = codec.manifest, json.loads(TINY_L_CONFIG.read_text())["model"]["encoder"]["config"]
    depth, w = cfg["transformer_depths"][0], cfg["sliding_window"][0]
    assert (m.model.attention, m.model.window_frames, m.model.frames_per_chunk, m.model.chunk_samples) == \
        ("sliding", w, 1, m.model.hop)
    assert m.windows == TEST_L_WINDOWS
    for side, unit in (("encoder", 1), ("decoder", m.model.hop)):
        g = m.graph(side)
        assert g.state_shape[:2] == (depth, 2 * w) and g.context_shape is None
        assert g.start_skip == g.flush_length == depth * w * unit
        prefix = "encode" if side == "encoder" else "decode"
        assert set(g.signatures) == {f"{prefix}_{n}" for n in TEST_L_WINDOWS}  # no flush signature
        assert g.signatures[f"{prefix}_4"].inputs["key_bias"] == (depth, 4 + 2 * w)
    raw = json.loads((fp32 / "manifest.json").read_text())
    assert "context_shape" not in raw["decoder"] and raw["model"]["attention"] == "sliding"
    assert codec.encoder_latency_samples == (1 + depth * w) * m.model.hop
    assert codec.decoder_latency_samples == depth * w * m.model.hop


def test_every_window_signature_runs_wholly_in_xnnpack(codec):
    for side in ("encoder", "decoder"):
        report = codec.manifest.graph(side).delegation
        assert report["undelegated"] == [] and set(report["partitions"].values()) == {1}
        assert len(report["partitions"]) == len(TEST_L_WINDOWS)


@pytest.mark.parametrize("case", CASES)
def test_the_fp32_graphs_hold_the_official_golden_offline_and_streamed(codec, golden, case):
    latents = codec.encode(golden[f"audio{case}"])
    ref = golden[f"latents{case}"]
    assert latents.shape == ref.shape and rel_err(ref, latents) <= GRAPH_TOLERANCE
    decoded = codec.decode(golden[f"zin{case}"])
    ref = golden[f"decoded{case}"]
    assert decoded.shape == ref.shape and rel_err(ref, decoded) <= GRAPH_TOLERANCE
    # The stream of one-frame windows gives the offline bits (which use windows of 4).
    rng = np.random.default_rng(case)
    assert np.array_equal(_streamed(codec.stream_encoder(), golden[f"audio{case}"], rng, 9000), latents)
    assert np.array_equal(_streamed(codec.stream_decoder(), golden[f"zin{case}"], rng, 3), decoded)


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_every_precision_exports_and_streams_equal_offline_bit_for_bit_at_any_push_sizes(export_l_dir, precision):
    with Codec.load(export_l_dir(precision), threads=2) as codec:
        assert codec.manifest.precision == precision and codec.manifest.model.sliding
        rng = np.random.default_rng(len(precision))
        hop = codec.hop
        # Lengths around the frame and the lag (4 frames): shorter than the lag, a frame and a sample either side.
        for samples in (1, hop - 1, hop, hop + 1, 3 * hop + 17, 5 * hop, 9 * hop + 4095, 23 * hop + 5):
            audio = _music(codec, samples, samples)
            latents = codec.encode(audio)
            assert latents.shape == (codec.latent_dim, -(-samples // hop)) and np.isfinite(latents).all()
            decoded = codec.decode(latents)
            assert decoded.shape == (codec.channels, latents.shape[1] * hop)
            for largest in (1, 4, None):
                assert np.array_equal(_streamed(codec.stream_encoder(largest), audio, rng, 3 * hop), latents), \
                    (samples, largest)
                assert np.array_equal(_streamed(codec.stream_decoder(largest), latents, rng, 6), decoded), \
                    (samples, largest)


def test_a_reset_stream_gives_a_new_streams_bits_mid_stream_and_after_a_flush(codec):
    audio = _music(codec, 7 * codec.hop + 100, 3)
    want = codec.encode(audio)
    enc = codec.stream_encoder()
    enc.push(audio[:, : 2 * codec.hop + 5])
    enc.reset()
    assert np.array_equal(_streamed(enc, audio, np.random.default_rng(0), 5000), want)
    enc.reset()
    assert np.array_equal(_streamed(enc, audio, np.random.default_rng(1), 5000), want)


def test_the_hosts_key_bias_is_the_pytorch_models_over_a_grid():
    from same_edge_export.model import stream_key_bias as torch_key_bias

    for depth in (1, 4, 12):
        for w in (1, 2, 3):
            for position in (0, 1, 5, 40):
                for frames in (1, 4, 16):
                    for total in (None, 0, 3, position + frames // 2, position + frames + 2):
                        ours = stream_key_bias(depth, w, position, frames, total)
                        theirs = torch_key_bias(depth, w, position, frames, total).numpy()
                        assert ours.dtype == np.float32 and np.array_equal(ours, theirs)


def test_both_python_command_lines_run_same_l_file_to_file(export_l_dir, tmp_path, capsys):
    import soundfile as sf

    from same_edge.cli import main
    from same_edge.latents import LatentFile

    model = export_l_dir("w8a8")
    with Codec.load(model, threads=2) as codec:
        audio = _music(codec, 5 * codec.hop + 123, 0)
        sf.write(tmp_path / "in.wav", audio.T, codec.sample_rate, subtype="FLOAT")
        assert main(["encode", "--model", str(model), str(tmp_path / "in.wav"), str(tmp_path / "z.npz")]) == 0
        latents = LatentFile.load(tmp_path / "z.npz").latents
        assert np.array_equal(latents, codec.encode(audio))
        assert main(["decode", "--model", str(model), str(tmp_path / "z.npz"), str(tmp_path / "out.wav")]) == 0
        out, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
        assert np.array_equal(out.T, codec.decode(latents)[:, : audio.shape[1]])
    assert main(["info", str(model)]) == 0
    assert "sliding window, 1 frame(s) either side (SAME-L)" in capsys.readouterr().out


def test_encode_dataset_writes_same_l_latents_equal_to_codec_encode(fp32, codec, tmp_path):
    import soundfile as sf

    from same_edge.dataset import DatasetOptions, encode_dataset
    from same_edge.latents import LatentFile

    (tmp_path / "in").mkdir()
    clips = {f"clip{i}.wav": _music(codec, n, i) for i, n in enumerate((3 * codec.hop + 7, 11 * codec.hop))}
    for name, audio in clips.items():
        sf.write(tmp_path / "in" / name, audio.T, codec.sample_rate, subtype="FLOAT")
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=fp32, workers=1, threads=2, progress=False))
    assert s.ok and s.encoded == 2
    for name, audio in clips.items():
        assert np.array_equal(LatentFile.load(tmp_path / "out" / f"{name}.npz").latents, codec.encode(audio))


def test_exporting_a_sliding_window_of_no_frames_is_refused_in_one_line_before_converting(tmp_path, capsys):
    from same_edge.cli import main

    raw = json.loads(TINY_L_CONFIG.read_text())
    for side in ("encoder", "decoder"):
        raw["model"][side]["config"]["sliding_window"] = [0, 0]
    (tmp_path / "model_config.json").write_text(json.dumps(raw))
    code = main(["export", "--config", str(tmp_path / "model_config.json"), "--checkpoint", str(TINY_L_CHECKPOINT),
                 "--out", str(tmp_path / "out"), "--quiet", "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "sliding window of 0 frames" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_exported_graphs_equal_the_pytorch_window_modules(tiny_l_model, fp32):
    """The encoder graph's one-frame window on random state equals PyTorch's, so what the graphs
    stream is the model's step, not only something that happens to match the golden."""
    from same_edge.graph import Graph
    from same_edge_export.graphs import SlidingEncoderWindow, sliding_window_inputs

    inputs = {k: torch.randn(v.shape) * (0.1 if k == "audio" else 1.0)
              for k, v in sliding_window_inputs(tiny_l_model, "encoder", 4).items() if k != "key_bias"}
    inputs["key_bias"] = torch.from_numpy(stream_key_bias(4, 1, 2, 4, None))
    with torch.no_grad():
        want = SlidingEncoderWindow(tiny_l_model)(**inputs)
    graph = Graph(fp32 / "encoder.tflite", threads=1)
    try:
        got = graph["encode_4"](**{k: v.numpy() for k, v in inputs.items()})
    finally:
        graph.close()
    for name in ("latents", "state"):
        assert rel_err(want[name].numpy(), got[name]) <= GRAPH_TOLERANCE, name


def test_stack_equals_torch_stack_for_any_count_and_axis():
    from same_edge_export.model import CONCAT_INPUTS, stack

    for count in range(1, CONCAT_INPUTS**3 + 2):
        tensors = [torch.randn(2, 3, 5) for _ in range(count)]
        for dim in (0, 1, 2, 3):
            assert torch.equal(stack(tensors, dim), torch.stack(tensors, dim)), (count, dim)


@pytest.mark.slow
def test_a_twelve_block_sliding_window_graph_runs_wholly_in_xnnpack(tmp_path):
    # SAME-L's state stacks one slice per block: one 12-input CONCATENATION fell outside XNNPACK's
    # delegate (full-size export, 2026-12-07); the tiny model's 4 blocks never showed it.
    import same_weights

    from same_edge_export.config import parse_config
    from same_edge_export.convert import convert_graph
    from same_edge_export.delegation import delegation_report
    from same_edge_export.model import SameAutoencoder

    cfg = same_weights.tiny_l()
    for side in ("encoder", "decoder"):
        cfg[side]["config"]["transformer_depths"] = [12]
    cfg["decoder"]["config"]["sinusoidal_blocks"] = [8]
    model = SameAutoencoder(parse_config(same_weights.model_config_json(cfg))).eval()
    (tmp_path / "encoder.tflite").write_bytes(convert_graph(model, "encoder", (1,)))
    assert delegation_report(tmp_path / "encoder.tflite") == {"partitions": {"encode_1": 1}, "undelegated": []}
