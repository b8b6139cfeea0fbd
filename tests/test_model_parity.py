"""The PyTorch SAME reproduces the official stable-audio-3 outputs (tiny fixture golden)."""

from copy import deepcopy

import numpy as np
import pytest
import torch

from conftest import GOLDEN_CASES, SAME_S_CONFIG, rel_err


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_encode_matches_official_golden(tiny_model, golden, case):
    with torch.no_grad():
        z = tiny_model.encode(torch.from_numpy(golden[f"audio{case}"])[None])[0].numpy()
    ref = golden[f"latents{case}"]
    assert z.shape == ref.shape
    assert rel_err(ref, z) <= 1e-5


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_decode_matches_official_golden(tiny_model, golden, case):
    with torch.no_grad():
        y = tiny_model.decode(torch.from_numpy(golden[f"zin{case}"])[None])[0].numpy()
    ref = golden[f"decoded{case}"]
    assert y.shape == ref.shape
    assert rel_err(ref, y) <= 1e-5


def test_decode_is_deterministic_by_default_and_seeded_noise_is_reproducible(tiny_model, golden):
    z = torch.from_numpy(golden["zin0"])[None]
    with torch.no_grad():
        clean = tiny_model.decode(z)
        noisy_a = tiny_model.decode(z, noise_seed=7)
        noisy_b = tiny_model.decode(z, noise_seed=7)
        noisy_c = tiny_model.decode(z, noise_seed=8)
    assert torch.equal(clean, tiny_model.decode(z))
    assert torch.equal(noisy_a, noisy_b)
    assert not torch.equal(noisy_a, noisy_c)
    assert not torch.equal(noisy_a, clean)


def test_batched_encode_equals_one_at_a_time(tiny_model, golden):
    a = torch.from_numpy(np.stack([golden["audio0"], golden["audio0"][:, ::-1].copy()]))
    with torch.no_grad():
        both = tiny_model.encode(a)
        second = tiny_model.encode(a[1:])
    assert torch.allclose(both[1:], second, atol=1e-6)


def test_a_block_computing_only_the_read_out_rows_equals_those_rows_of_the_full_block(tiny_model):
    # The exported encoder computes its last block for the read-out tokens only.
    block = tiny_model.encoder.transformer.blocks[-1]
    chunk = tiny_model.encoder.transformer.frames_per_chunk * tiny_model.config.frame_tokens
    x = torch.randn(3 * chunk, tiny_model.config.encoder.width, generator=torch.Generator().manual_seed(0))
    rows = torch.arange(tiny_model.config.frame_tokens - 1, 3 * chunk, tiny_model.config.frame_tokens)
    with torch.no_grad():
        assert torch.allclose(block(x, last_of=tiny_model.config.frame_tokens), block(x)[rows], atol=1e-6)


def test_same_s_config_builds_the_108m_parameter_model():
    from same_edge_export.config import load_config
    from same_edge_export.model import SameAutoencoder

    cfg = load_config(SAME_S_CONFIG)
    model = SameAutoencoder(cfg)
    params = sum(p.numel() for p in model.parameters())
    assert (cfg.encoder.width, cfg.encoder.heads, cfg.encoder.depth, cfg.latent_dim, cfg.hop) == (768, 12, 6, 256, 4096)
    assert 100e6 < params < 115e6


def test_pair_major_rows_are_a_permutation_that_puts_every_rotary_partner_half_a_projection_away():
    from same_edge_export.model import pair_major_rows

    heads, head_dim = 3, 8
    rows = pair_major_rows(heads, head_dim)
    assert sorted(rows.tolist()) == list(range(heads * head_dim))
    quarter = head_dim // 4

    def official_partner(row: int) -> int:  # [r1, r2, p1, p2] -> r1 <-> r2, p1 <-> p2
        head, dim = divmod(row, head_dim)
        q, j = divmod(dim, quarter)
        return head * head_dim + (q ^ 1) * quarter + j

    half = rows.numel() // 2
    assert [official_partner(r) for r in rows[:half].tolist()] == rows[half:].tolist()


def test_a_folded_copy_computes_every_output_bit_for_bit_and_leaves_the_model_trainable(tiny_model):
    """The export converts a copy whose weight-derived tensors are buffers computed once (the
    converter then folds nothing per signature): the same outputs exactly, the model untouched."""
    from same_edge_export.graphs import graph_modules, signature_inputs
    from same_edge_export.model import Folding, folded_copy

    folded = folded_copy(tiny_model)
    assert all(m.folded for m in folded.modules() if isinstance(m, Folding))
    assert not any(m.folded for m in tiny_model.modules() if isinstance(m, Folding))
    torch.manual_seed(0)
    audio = torch.randn(1, 2, 3 * tiny_model.length_samples + 123)
    with torch.no_grad():
        latents = tiny_model.encode(audio)
        assert torch.equal(folded.encode(audio), latents)
        assert torch.equal(folded.decode(latents), tiny_model.decode(latents))
        for side in ("encoder", "decoder"):
            prefix = "encode" if side == "encoder" else "decode"
            modules = zip(graph_modules(tiny_model)[side], graph_modules(folded)[side], strict=True)
            for (module, copy), name in zip(modules, (f"{prefix}_2", f"{prefix}_flush"), strict=True):
                inputs = {k: v if k == "first" else torch.randn(v.shape) for k, v in signature_inputs(tiny_model, name).items()}
                ours, theirs = module(**inputs), copy(**inputs)
                assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    # The model itself still derives them from its parameters on every call: gradients reach them.
    block = deepcopy(tiny_model.encoder.transformer.blocks[0]).requires_grad_(True)
    block(torch.randn(block.attn.chunk_len, block.attn.width)).sum().backward()
    assert block.attn.qkv.weight.grad.abs().sum() > 0 and block.attn.q_norm.alpha.grad.abs().sum() > 0
    assert block.ff.up.weight.grad.abs().sum() > 0
