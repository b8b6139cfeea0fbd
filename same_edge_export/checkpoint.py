"""Strict loading (and saving) of SAME weights in the official stable-audio-3 key layout.

The official loader prints and skips a tensor it cannot place, which silently yields a broken
model. Here every missing, unexpected or mis-shaped tensor is an error that names it.

Official layout, bare (``stabilityai/SAME-S``) or under ``pretransform.model.`` (full Stable
Audio 3 checkpoints)::

    encoder.layers.0.{new_tokens, mapping.*, transformers.N.*}   resampling block
    encoder.layers.2.{weight, bias}                              width -> latent projection
    decoder.layers.1.{weight, bias}                              latent -> width projection
    decoder.layers.3.{new_tokens, mapping.*, transformers.N.*}   resampling block, k=3 conv
    bottleneck.{scaling_factor, bias, running_std, noise_scaling_factor}

Weight norm is stored as ``weight_g``/``weight_v`` or ``parametrizations.weight.original0/1``
and fused here.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .config import SameConfig, load_config
from .errors import ExportError
from .model import SameAutoencoder, pair_major_rows, rope_inv_freq

FULL_CHECKPOINT_PREFIX = "pretransform.model."


class CheckpointError(ExportError, ValueError):
    """The checkpoint cannot be read, or does not match the configuration."""


# Block-internal names: official suffix -> ours.
_BLOCK_KEYS = {
    "pre_norm": "attn_norm",
    "self_attn.to_qkv": "attn.qkv",
    "self_attn.to_out": "attn.out",
    "self_attn.q_norm": "attn.q_norm",
    "self_attn.k_norm": "attn.k_norm",
    "ff_norm": "ff_norm",
    "ff.ff.0.proj": "ff.up",
    "ff.ff.2": "ff.down",
}
_SIDES = {"encoder": "encoder.layers.0.", "decoder": "decoder.layers.3."}
_SIMPLE = {
    "encoder.layers.0.new_tokens": "encoder.output_token",
    "encoder.layers.0.mapping.bias": "encoder.input_proj.bias",
    "encoder.layers.2.weight": "encoder.to_latent.weight",
    "encoder.layers.2.bias": "encoder.to_latent.bias",
    "decoder.layers.1.weight": "decoder.from_latent.weight",
    "decoder.layers.1.bias": "decoder.from_latent.bias",
    "decoder.layers.3.new_tokens": "decoder.output_token",
    "decoder.layers.3.mapping.bias": "decoder.output_conv.bias",
    "bottleneck.running_std": "bottleneck.running_std",
}
_BLOCK_RE = re.compile(r"^(encoder\.layers\.0|decoder\.layers\.3)\.transformers\.(\d+)\.(.+)\.(\w+)$")
_MAPPING_RE = re.compile(
    r"^(encoder\.layers\.0|decoder\.layers\.3)\.mapping\."
    r"(weight|weight_g|weight_v|parametrizations\.weight\.original0|parametrizations\.weight\.original1)$"
)
_MAPPING_TARGET = {"encoder.layers.0": "encoder.input_proj.weight", "decoder.layers.3": "decoder.output_conv.weight"}


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (or a pickled state dict, read with
    ``weights_only=True``), as float32 on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    else:
        try:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several unrelated types for a bad pickle
            raise CheckpointError(f"{path} is not a readable weights-only PyTorch checkpoint ({e})") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            loaded = loaded["state_dict"]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise CheckpointError(f"{path} does not hold a state dict of tensors")
        tensors = loaded
    return {k: v.to(torch.float32) for k, v in tensors.items()}


def _strip_prefix(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(k.startswith(FULL_CHECKPOINT_PREFIX) for k in tensors):
        n = len(FULL_CHECKPOINT_PREFIX)
        return {k[n:]: v for k, v in tensors.items() if k.startswith(FULL_CHECKPOINT_PREFIX)}
    return tensors


def _fuse_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torch.nn.utils.weight_norm with dim=0: w = g * v / ||v||, the norm over all but dim 0."""
    norm = v.reshape(v.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (v.ndim - 1)))
    return g * v / norm


def qkv_rows_from_official(width: int, head_dim: int) -> torch.Tensor:
    """For each row of our attention projection, its row in the official one.

    Official: five row blocks [q, k, v, q2, k2], each in per-head order. Ours (see
    ``model.DifferentialAttention``): [q, q2, k, k2, v], the first four in pair-major order.
    """
    official_block = (0, 3, 1, 4, 2)  # ours q, q2, k, k2, v
    inside = pair_major_rows(width // head_dim, head_dim)
    return torch.cat([official_block[i] * width + (inside if i < 4 else torch.arange(width)) for i in range(5)])


def _reorder_qkv(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``w[rows]`` for a [5 * width, width] weight (other shapes pass unchanged, for the shape check
    to report)."""
    return w[rows] if w.ndim == 2 and w.shape[0] == rows.numel() else w


def _conv_to_linear(w: torch.Tensor) -> torch.Tensor:
    """Conv1d weight [out, in, k] -> our stacked-neighbour Linear weight [out, k * in]."""
    return w.permute(0, 2, 1).reshape(w.shape[0], -1)


def _translate(
    official: dict[str, torch.Tensor], cfg: SameConfig
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Official tensors -> our state dict, the official keys not understood, and rope mismatches."""
    ours: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    rope_problems: list[str] = []
    mapping: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in official.items():
        if key in _SIMPLE:
            ours[_SIMPLE[key]] = value
        elif key == "bottleneck.scaling_factor":
            ours["bottleneck.scale"] = value.reshape(-1)
        elif key == "bottleneck.bias":
            ours["bottleneck.bias"] = value.reshape(-1)
        elif key == "bottleneck.noise_scaling_factor":
            if value.numel() != 0:
                raise CheckpointError(f"{key} has shape {list(value.shape)}; noise augmentation is unsupported")
        elif m := _MAPPING_RE.match(key):
            mapping.setdefault(m.group(1), {})[m.group(2)] = value
        elif m := _BLOCK_RE.match(key):
            side = "encoder" if m.group(1).startswith("encoder") else "decoder"
            module, param = m.group(3), m.group(4)
            if module == "rope" and param == "inv_freq":
                head_dim = getattr(cfg, side).head_dim
                expected = rope_inv_freq(head_dim)
                if value.shape != expected.shape or not torch.allclose(value, expected, rtol=1e-5, atol=0):
                    rope_problems.append(f"{key} does not match the rotary embedding the config implies "
                                         f"(head_dim {head_dim}, base 10000)")
            elif module in _BLOCK_KEYS:
                if module == "self_attn.to_qkv":
                    t = getattr(cfg, side)
                    value = _reorder_qkv(value, qkv_rows_from_official(t.width, t.head_dim))
                ours[f"{side}.transformer.blocks.{m.group(2)}.{_BLOCK_KEYS[module]}.{param}"] = value
            else:
                unknown.append(key)
        else:
            unknown.append(key)
    for prefix, parts in mapping.items():
        names = {"weight_g": "weight_v", "parametrizations.weight.original0": "parametrizations.weight.original1"}
        if "weight" in parts and len(parts) == 1:
            w = parts["weight"]
        else:
            pair = next(((g, v) for g, v in names.items() if g in parts and v in parts and len(parts) == 2), None)
            if pair is None:
                raise CheckpointError(f"{prefix}.mapping has an incomplete weight-norm pair: {sorted(parts)}")
            w = _fuse_weight_norm(parts[pair[0]], parts[pair[1]])
        ours[_MAPPING_TARGET[prefix]] = _conv_to_linear(w) if w.ndim == 3 else w
    return ours, unknown, rope_problems


def _official_name(ours: str) -> str:
    """Best official name for one of our parameters, for error messages."""
    for off, mine in _SIMPLE.items():
        if mine == ours:
            return off
    if ours == "bottleneck.scale":
        return "bottleneck.scaling_factor"
    if ours == "bottleneck.bias":
        return "bottleneck.bias"
    for side, prefix in _SIDES.items():
        if ours == _MAPPING_TARGET[prefix[:-1]]:
            return prefix + "mapping.weight_v"
        m = re.match(rf"^{side}\.transformer\.blocks\.(\d+)\.(.+)\.(\w+)$", ours)
        if m:
            off = {v: k for k, v in _BLOCK_KEYS.items()}[m.group(2)]
            return f"{prefix}transformers.{m.group(1)}.{off}.{m.group(3)}"
    return ours


def load_state(model: SameAutoencoder, tensors: dict[str, torch.Tensor]) -> None:
    """Load official-layout tensors into ``model``, strictly."""
    ours, unknown, rope_problems = _translate(_strip_prefix(tensors), model.config)
    expected = model.state_dict()
    problems = [f"unexpected tensor {k}" for k in sorted(unknown)]
    problems += [f"unexpected tensor {_official_name(k)}" for k in sorted(set(ours) - set(expected))]
    problems += [f"missing tensor {_official_name(k)}" for k in sorted(set(expected) - set(ours))]
    for k in sorted(set(ours) & set(expected)):
        if ours[k].shape != expected[k].shape:
            problems.append(f"{_official_name(k)} has shape {list(ours[k].shape)}, "
                            f"the config expects {list(expected[k].shape)}")
    problems += rope_problems
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError("checkpoint does not match the config: " + "; ".join(problems[:3]) + more)
    model.load_state_dict(ours, strict=True)


def load_model(config_path: str | Path, checkpoint_path: str | Path) -> SameAutoencoder:
    """Build the model a ``model_config.json`` describes and load its checkpoint, in eval mode."""
    model = SameAutoencoder(load_config(config_path))
    load_state(model, read_tensors(checkpoint_path))
    return model.eval().requires_grad_(False)


def official_state_dict(model: SameAutoencoder) -> dict[str, torch.Tensor]:
    """Our parameters in the official key layout (weight norm as weight_g/weight_v), for saving
    a model that loads with the official code and with ``load_model``."""
    out: dict[str, torch.Tensor] = {}
    cfg = model.config
    for key, value in model.state_dict().items():
        value = value.detach().clone()
        if key == "bottleneck.scale":
            out["bottleneck.scaling_factor"] = value.reshape(1, -1, 1)
        elif key == "bottleneck.bias":
            out["bottleneck.bias"] = value.reshape(1, -1, 1)
        elif key in _MAPPING_TARGET.values():
            prefix = next(p for p, t in _MAPPING_TARGET.items() if t == key)
            kernel = cfg.decoder_kernel if key.startswith("decoder") else 1
            w = value.reshape(value.shape[0], kernel, -1).permute(0, 2, 1).contiguous()
            norm = w.reshape(w.shape[0], -1).norm(dim=1).reshape(-1, 1, 1)
            out[f"{prefix}.mapping.weight_g"] = norm
            out[f"{prefix}.mapping.weight_v"] = w
        elif key.endswith(".attn.qkv.weight"):
            t = cfg.encoder if key.startswith("encoder") else cfg.decoder
            out[_official_name(key)] = _reorder_qkv(value, torch.argsort(qkv_rows_from_official(t.width, t.head_dim)))
        else:
            out[_official_name(key)] = value
    for side, prefix in _SIDES.items():
        for i in range(getattr(cfg, side).depth):
            out[f"{prefix}transformers.{i}.rope.inv_freq"] = rope_inv_freq(getattr(cfg, side).head_dim)
    out["bottleneck.noise_scaling_factor"] = torch.zeros(1, 0, 1)
    return {k: v.contiguous() for k, v in out.items()}
