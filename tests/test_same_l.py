"""SAME-L in PyTorch: the sliding-window model equals the official stable-audio-3 code (tiny SAME-L golden),
loads strictly from both official layouts, and keeps SAME-S's shared code SAME-S's."""

import dataclasses
import json

import numpy as np
import pytest
import same_weights
import torch
from safetensors.torch import load_file, save_file

from conftest import TINY_L, rel_err
from same_edge_export import CheckpointError, UnsupportedConfigError, load_config, load_model
from same_edge_export.checkpoint import load_state, official_state_dict, read_tensors
from same_edge_export.config import parse_config
from same_edge_export.model import SameAutoencoder, SlidingWindowTransformer, stream_key_bias

CONFIG, CHECKPOINT = TINY_L / "model_config.json", TINY_L / "model.safetensors"
CASES = (0, 1, 2)  # audio 13, 7 and 1 frames (the first not a whole number of frames); latents 11, 4 and 1
# fp32 PyTorch against the official golden, max |error| / max |ref|: measured 5.4e-7 to 1.1e-6; held to 10x
# the largest (the issue asks for 1e-4).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(TINY_L / "golden.npz") as g:
        return {k: g[k] for k in g}


@pytest.fixture(scope="module")
def model() -> SameAutoencoder:
    return load_model(CONFIG, CHECKPOINT)


def _with_window(frames: int) -> SameAutoencoder:
    m = SameAutoencoder(dataclasses.replace(load_config(CONFIG), window_frames=frames))
    load_state(m, read_tensors(CHECKPOINT))
    return m.eval()


def _encode(m: SameAutoencoder, audio: np.ndarray, pruned: bool = False) -> np.ndarray:
    with torch.no_grad():
        return m.encode(torch.from_numpy(audio)[None], pruned=pruned)[0].numpy()


def _decode(m: SameAutoencoder, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return m.decode(torch.from_numpy(z)[None])[0].numpy()


@pytest.mark.parametrize("pruned", [False, True], ids=["all-tokens", "read-out-only"])
@pytest.mark.parametrize("case", CASES)
def test_encode_matches_official_golden(model, golden, case, pruned):
    z = _encode(model, golden[f"audio{case}"], pruned)
    assert z.shape == golden[f"latents{case}"].shape
    assert rel_err(golden[f"latents{case}"], z) <= TOLERANCE


@pytest.mark.parametrize("case", CASES)
def test_decode_matches_official_golden(model, golden, case):
    y = _decode(model, golden[f"zin{case}"])
    assert y.shape == golden[f"decoded{case}"].shape
    assert rel_err(golden[f"decoded{case}"], y) <= TOLERANCE


def test_encode_pads_to_one_frame_and_decode_returns_every_latents_frame_only(model, golden):
    # SAME-S pads audio to 8192 samples and odd latent counts to even; SAME-L to 4096 and not at all.
    assert model.length_samples == 4096
    for case in CASES:
        t, n = golden[f"audio{case}"].shape[1], golden[f"zin{case}"].shape[1]
        assert golden[f"latents{case}"].shape[1] == -(-t // 4096)
        assert golden[f"decoded{case}"].shape[1] == n * 4096


@pytest.mark.parametrize("frames", [0, 2])
def test_a_window_wrong_by_one_frame_fails_the_golden_by_a_wide_margin(golden, frames):
    # Measured: windows of 0 and 2 frames miss the golden by 0.12 to 0.67 of its peak, at least
    # 10^4 times the tolerance, on every case longer than one frame.
    wrong = _with_window(frames)
    for case in (0, 1):
        assert rel_err(golden[f"latents{case}"], _encode(wrong, golden[f"audio{case}"])) > 1000 * TOLERANCE
        assert rel_err(golden[f"decoded{case}"], _decode(wrong, golden[f"zin{case}"])) > 1000 * TOLERANCE


@pytest.mark.parametrize("block_frames", [2, 3, 5, 8, 16])
def test_the_attention_block_size_changes_nothing_but_rounding(model, golden, block_frames):
    other = SameAutoencoder(model.config)
    other.load_state_dict(model.state_dict())
    for side in (other.encoder, other.decoder):
        t = side.transformer
        side.transformer = SlidingWindowTransformer(getattr(model.config, "encoder" if side is other.encoder
                                                            else "decoder"), t.window_frames, t.frame_tokens,
                                                    block_frames)
        side.transformer.load_state_dict(t.state_dict())
    other.eval()
    for case in CASES:
        assert rel_err(_encode(model, golden[f"audio{case}"]), _encode(other, golden[f"audio{case}"])) <= 1e-6
        assert rel_err(_decode(model, golden[f"zin{case}"]), _decode(other, golden[f"zin{case}"])) <= 1e-6


def test_sine_gates_are_on_the_decoders_last_blocks_as_the_official_off_by_one_counts_them():
    # Official: block i is sine-gated when (depth - i) < sinusoidal_blocks: 8 of SAME-L's 12 gives
    # blocks 5..11 (seven); 3 of the tiny model's 4 gives blocks 2 and 3. The encoder has none.
    def gated(cfg_block: dict, side: str) -> list[int]:
        m = SameAutoencoder(parse_config(same_weights.model_config_json(cfg_block)))
        return [i for i, b in enumerate(getattr(m, side).transformer.blocks) if b.ff.sine]

    assert gated(same_weights.tiny_l(), "decoder") == [2, 3]
    assert gated(same_weights.tiny_l(), "encoder") == []
    full = parse_config(same_weights.model_config_json(same_weights.SAME_L))
    assert [i for i in range(12) if full.decoder.uses_sine(i)] == list(range(5, 12))


def test_released_same_l_configuration_has_852m_parameters_in_the_official_structure():
    # The official modules built on the meta device: 852,127,073 parameters, plus 24 x 16 rotary
    # frequencies in their state dict, whose keys and shapes same_weights reproduces exactly (checked
    # against the official code when the fixture was made). Ours: the same, with weight norm fused
    # (no weight_g, 2,048 numbers) and the frequencies computed, not stored.
    cfg = parse_config(same_weights.model_config_json(same_weights.SAME_L))
    assert (cfg.encoder.width, cfg.encoder.depth, cfg.encoder.heads, cfg.decoder_kernel, cfg.window_frames) == \
        (1536, 12, 24, 1, 1)
    with torch.device("meta"):
        ours = sum(p.numel() for p in SameAutoencoder(cfg).parameters())
    official = {k: int(np.prod(s)) for k, s in same_weights.shapes(same_weights.SAME_L).items()}
    unstored = sum(n for k, n in official.items() if k.endswith(("inv_freq", "weight_g")))
    assert (sum(official.values()), unstored) == (852_127_073 + 24 * 16, 2_048 + 24 * 16)
    assert ours == sum(official.values()) - unstored


def test_stable_audio_3_medium_checkpoint_loads_from_its_pretransform_prefix(tmp_path, model, golden):
    nested = {f"pretransform.model.{k}": v for k, v in load_file(str(CHECKPOINT)).items()}
    nested["model.transformer.layers.0.weight"] = torch.zeros(3)  # the DiT's tensors are ignored
    save_file(nested, str(tmp_path / "medium.safetensors"))
    medium = load_model(CONFIG, tmp_path / "medium.safetensors")
    assert np.array_equal(_decode(medium, golden["zin0"]), _decode(model, golden["zin0"]))


def test_our_model_saved_in_the_official_layout_reloads_to_the_same_weights(tmp_path, model):
    save_file(official_state_dict(model), str(tmp_path / "round.safetensors"))
    again = load_model(CONFIG, tmp_path / "round.safetensors")
    assert all(torch.allclose(a, b, rtol=1e-6, atol=1e-7)
               for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))


def _broken(kind: str) -> dict[str, torch.Tensor]:
    t = load_file(str(CHECKPOINT))
    if kind == "missing":
        del t["decoder.layers.3.transformers.3.ff.ff.2.weight"]
    elif kind == "unexpected":
        t["decoder.layers.3.transformers.4.ff_norm.alpha"] = torch.ones(1)  # a fifth block
    elif kind == "misshapen":  # SAME-S's k=3 output conv where SAME-L has k=1
        t["decoder.layers.3.mapping.weight_v"] = torch.randn(512, 32, 3)
    return t


@pytest.mark.parametrize("kind,named", [
    ("missing", "missing tensor decoder.layers.3.transformers.3.ff.ff.2.weight"),
    ("unexpected", "unexpected tensor decoder.layers.3.transformers.4.ff_norm.alpha"),
    ("misshapen", "decoder.layers.3.mapping.weight_v has shape [512, 96], the config expects [512, 32]"),
])
def test_a_broken_same_l_checkpoint_is_refused_in_one_line_naming_the_tensor(tmp_path, kind, named):
    save_file(_broken(kind), str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError) as e:
        load_model(CONFIG, tmp_path / "broken.safetensors")
    assert named in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("window,why", [([1], "sliding_window [1]"), ([1, 2], "sliding_window [1, 2]"),
                                        ([-1, -1], "sliding_window [-1, -1]")])
def test_a_window_other_than_whole_frames_either_side_is_refused(tmp_path, window, why):
    raw = json.loads(CONFIG.read_text())
    for side in ("encoder", "decoder"):
        raw["model"][side]["config"]["sliding_window"] = window
    (tmp_path / "c.json").write_text(json.dumps(raw))
    with pytest.raises(UnsupportedConfigError, match=why.replace("[", r"\[").replace("]", r"\]")):
        load_config(tmp_path / "c.json")


def test_an_encoder_and_decoder_with_different_attention_are_refused(tmp_path):
    raw = json.loads(CONFIG.read_text())
    raw["model"]["decoder"]["config"]["sliding_window"] = [2, 2]
    (tmp_path / "c.json").write_text(json.dumps(raw))
    with pytest.raises(UnsupportedConfigError, match="differ in attention"):
        load_config(tmp_path / "c.json")


# Streaming (issue 43's design, in PyTorch): SAME-L's band needs, at every block, one frame beyond
# the frames it finishes, so each block runs w frames behind the one below and keeps the last 2w
# frames of its input as state; the stack's output lags depth * w frames.

def _stream(t: SlidingWindowTransformer, x: torch.Tensor, sizes: list[int], last_token_only: bool) -> torch.Tensor:
    """Push x [B, G, S, D] in windows of the given sizes, then windows of padding until the last frame
    is out; the stream's G output frames."""
    b, g, s, d = x.shape
    depth, w = len(t.blocks), t.window_frames
    state, position, out = torch.zeros(b, depth, 2 * w, s, d), 0, []
    sizes = iter(sizes)
    while position < g + depth * w:
        n = next(sizes, 1)
        frames = x[:, position : position + n]
        frames = torch.nn.functional.pad(frames, (0, 0, 0, 0, 0, n - frames.shape[1]))
        bias = stream_key_bias(depth, w, position, n, g if position + n > g else None)
        y, state = t.step(frames, state, bias, last_token_only)
        out.append(y)
        position += n
    return torch.cat(out, dim=1)[:, depth * w : depth * w + g]


@pytest.mark.parametrize("side", ["encoder", "decoder"])
@pytest.mark.parametrize("seed", range(4))
def test_streamed_windows_of_random_sizes_equal_the_whole_sequence(model, side, seed):
    t = getattr(model, side).transformer
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(1, 30))
    x = torch.from_numpy(rng.standard_normal((1, frames, model.config.frame_tokens, t.blocks[0].attn.width),
                                             dtype=np.float32))
    sizes = [int(n) for n in rng.choice([1, 2, 3, 4, 16], size=40)]
    last = side == "encoder"
    with torch.no_grad():
        whole, streamed = t(x, last_token_only=last), _stream(t, x, sizes, last)
    # Equal bit for bit in eager PyTorch on the machine this was written on; held to rounding here
    # because the float kernels PyTorch picks may depend on a matrix's row count.
    assert streamed.shape == whole.shape
    assert rel_err(whole.numpy(), streamed.numpy()) <= 1e-6


def test_a_stream_key_bias_masks_the_frames_before_the_start_and_past_the_end():
    # depth 2, w 1, a window of 2 frames pushed after 3: block 0 reads frames 1..4, block 1 frames 0..3.
    bias = stream_key_bias(2, 1, position=3, frames=2, total=4)
    assert (bias == 0).tolist() == [[True, True, True, False], [True, True, True, True]]
    start = stream_key_bias(2, 1, position=0, frames=1, total=None)
    assert (start == 0).tolist() == [[False, False, True], [False, False, False]]


def test_a_sliding_window_decoder_with_a_wider_output_conv_has_no_window_graph():
    # The window graphs carry no output-conv look-back: SAME-L's k=1 conv needs none, a k=3 one would.
    cfg = same_weights.tiny_l()
    cfg["decoder"]["config"]["conv_mapping"] = True
    from same_edge_export.graphs import SlidingDecoderWindow

    with pytest.raises(ValueError, match="k=3 output conv"):
        SlidingDecoderWindow(SameAutoencoder(parse_config(same_weights.model_config_json(cfg))))
