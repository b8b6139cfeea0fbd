"""Seeded SAME weights in the official checkpoint layout (key names and shapes only; every value random).

From ../shared/fixtures/same_weights.py (which made the tiny SAME-S fixture), with SAME-L's
released configuration and a tiny SAME-L added. It does not use this project's model code, so
fixtures made with it check our loader as well as our model.

Used to build parity fixtures: the same seed always gives the same tensors, with numpy alone.
Every parameter is randomised (the official init zeroes residual branches, which would make
a parity check blind to the transformer)."""
import json

import numpy as np


def _block_cfg(ae, side):
    c = ae[side]["config"]
    dim = c["channels"] * c["c_mults"][0]
    heads_dim = min(c.get("dim_heads", 64), dim)
    return dim, heads_dim, c["transformer_depths"][0], c.get("conv_mapping", False)


class _ShapesOnly:
    """Stands in for the generator when only the shapes are wanted: zero-stride views, nothing allocated."""

    def normal(self, loc=0.0, scale=1.0, size=()):
        return np.broadcast_to(np.float32(0), size)

    uniform = normal


def state_dict(config, seed):
    """config: the autoencoder block (has encoder/decoder/bottleneck/pretransform). Returns {key: float32 array}."""
    sd = _draw(config, np.random.default_rng(seed))
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def shapes(config):
    """{key: shape} of ``state_dict(config, seed)``, without drawing (a full-size model in no memory)."""
    return {k: tuple(v.shape) for k, v in _draw(config, _ShapesOnly()).items()}


def _draw(config, rng):
    sd = {}

    def lin(out, inp, bias=True, prefix=""):
        sd[prefix + "weight"] = rng.normal(0, 1 / np.sqrt(inp), (out, inp))
        if bias:
            sd[prefix + "bias"] = rng.normal(0, 0.02, (out,))

    def dyt(n, prefix):
        sd[prefix + "alpha"] = rng.uniform(0.5, 2.0, (1,))
        sd[prefix + "gamma"] = 1 + 0.2 * rng.normal(size=(n,))
        sd[prefix + "beta"] = 0.05 * rng.normal(size=(n,))

    def trb(prefix, dim, head_dim, depth, mapping_in, mapping_out, kernel, gain):
        sd[prefix + "new_tokens"] = rng.normal(0, 0.2, (1, 1, dim))
        sd[prefix + "mapping.bias"] = rng.normal(0, 0.02, (mapping_out,))
        sd[prefix + "mapping.weight_g"] = gain * (0.5 + np.abs(rng.normal(size=(mapping_out, 1, 1))))
        sd[prefix + "mapping.weight_v"] = rng.normal(size=(mapping_out, mapping_in, kernel))
        inner = dim * 3
        rope = head_dim // 2
        for i in range(depth):
            p = f"{prefix}transformers.{i}."
            dyt(dim, p + "pre_norm.")
            lin(5 * dim, dim, bias=False, prefix=p + "self_attn.to_qkv.")
            lin(dim, dim, bias=False, prefix=p + "self_attn.to_out.")
            dyt(head_dim, p + "self_attn.q_norm.")
            dyt(head_dim, p + "self_attn.k_norm.")
            dyt(dim, p + "ff_norm.")
            lin(2 * inner, dim, prefix=p + "ff.ff.0.proj.")
            lin(dim, inner, prefix=p + "ff.ff.2.")
            sd[p + "rope.inv_freq"] = 1.0 / (10000 ** (np.arange(0, rope, 2) / rope))

    io = config["encoder"]["config"]["in_channels"]
    latent = config["latent_dim"]
    dim, hd, depth, _ = _block_cfg(config, "encoder")
    trb("encoder.layers.0.", dim, hd, depth, io, dim, 1, gain=8.0)  # audio patches are small
    lin(latent, dim, prefix="encoder.layers.2.")
    dim, hd, depth, conv = _block_cfg(config, "decoder")
    lin(dim, latent, prefix="decoder.layers.1.")
    trb("decoder.layers.3.", dim, hd, depth, dim, config["decoder"]["config"]["out_channels"], 3 if conv else 1, gain=1.0)
    sd["bottleneck.scaling_factor"] = 1 + 0.2 * rng.normal(size=(1, latent, 1))
    sd["bottleneck.bias"] = 0.1 * rng.normal(size=(1, latent, 1))
    sd["bottleneck.noise_scaling_factor"] = np.zeros((1, 0, 1))
    sd["bottleneck.running_std"] = np.array([1.7])
    return sd


SAME_S = {
    "pretransform": {"type": "patched", "config": {"patch_size": 256, "channels": 2}},
    "encoder": {"type": "same", "config": {
        "in_channels": 512, "channels": 128, "c_mults": [6], "strides": [16], "latent_dim": 256,
        "transformer_depths": [6], "checkpointing": False, "differential": True, "dyt": True, "dim_heads": 64,
        "variable_stride": True, "chunk_size": 32, "chunk_midpoint_shift": True, "mask_noise": 0.0}},
    "decoder": {"type": "same", "config": {
        "out_channels": 512, "channels": 128, "c_mults": [6], "strides": [16], "latent_dim": 256,
        "transformer_depths": [6], "sinusoidal_blocks": [0], "checkpointing": False, "differential": True, "dyt": True,
        "dim_heads": 64, "variable_stride": True, "chunk_size": 32, "chunk_midpoint_shift": True, "conv_mapping": True,
        "mask_noise": 0.01}},
    "bottleneck": {"type": "softnorm", "config": {
        "dim": 256, "noise_augment_dim": 0, "noise_regularize": True, "auto_scale": True, "freeze": True}},
    "latent_dim": 256, "downsampling_ratio": 4096, "io_channels": 2,
}


def tiny():
    """Same structure as SAME-S (patch 256, stride 16, 34-token chunks, midpoint shift), tiny widths."""
    cfg = json.loads(json.dumps(SAME_S))
    for side in ("encoder", "decoder"):
        c = cfg[side]["config"]
        c.update(channels=16, c_mults=[2], latent_dim=8, transformer_depths=[4], dim_heads=16)
    cfg["bottleneck"]["config"]["dim"] = 8
    cfg["latent_dim"] = 8
    return cfg


SAME_L = json.loads(json.dumps(SAME_S))
for _side in ("encoder", "decoder"):
    SAME_L[_side]["config"].update(channels=256, transformer_depths=[12], sliding_window=[1, 1])
    for _key in ("chunk_size", "chunk_midpoint_shift", "conv_mapping"):
        SAME_L[_side]["config"].pop(_key, None)
SAME_L["decoder"]["config"]["sinusoidal_blocks"] = [8]  # official: blocks 5..11 of 12 ((depth - i) < 8)
SAME_L["encoder"]["config"].pop("sinusoidal_blocks", None)  # the official SAMEEncoder takes none


def tiny_l():
    """Same structure as SAME-L (patch 256, stride 16, a sliding window of one 17-token frame each side,
    sine gates on the decoder's last blocks, k=1 output conv), tiny widths; 4 blocks, the last 2 sine-gated."""
    cfg = json.loads(json.dumps(SAME_L))
    for side in ("encoder", "decoder"):
        c = cfg[side]["config"]
        c.update(channels=16, c_mults=[2], latent_dim=8, transformer_depths=[4], dim_heads=16)
    cfg["decoder"]["config"]["sinusoidal_blocks"] = [3]
    cfg["bottleneck"]["config"]["dim"] = 8
    cfg["latent_dim"] = 8
    return cfg


def model_config_json(ae_block):
    """Wrap an autoencoder block the way an AE-only model_config.json does."""
    return {"model_type": "autoencoder", "sample_rate": 44100, "audio_channels": 2, "model": ae_block}
