"""SAME model configuration, parsed from the official ``model_config.json``.

Both official layouts are accepted: AE-only (``{"model": {encoder, decoder, ...}}``, as in
``stabilityai/SAME-S``) and full Stable Audio 3 (``{"model": {"pretransform": {"config": ...}}}``).
Anything this implementation does not compute exactly is refused with ``UnsupportedConfigError``
rather than approximated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ExportError


class ConfigError(ExportError, ValueError):
    """The configuration file is unreadable or malformed."""


class UnsupportedConfigError(ConfigError):
    """The configuration is a valid SAME variant that this implementation does not support."""


@dataclass(frozen=True)
class TransformerConfig:
    """One side (encoder or decoder) of the Transformer Resampling Block."""

    width: int  # transformer model dimension (768 for SAME-S)
    head_dim: int  # 64 for SAME-S
    depth: int  # blocks; the first depth // 2 run before the midpoint shift
    ff_mult: int  # SwiGLU inner width = ff_mult * width
    sinusoidal_blocks: int  # official option: the last blocks use sin(pi x) instead of SiLU
    mask_noise: float  # std of the official inference noise on the learned output tokens
    output_tokens: int  # stored learned-token count: 1 (variable_stride) or the stride

    @property
    def heads(self) -> int:
        return self.width // self.head_dim

    def uses_sine(self, block: int) -> bool:
        return (self.depth - block) < self.sinusoidal_blocks


@dataclass(frozen=True)
class SameConfig:
    """Everything needed to build a SAME autoencoder, in this project's own terms."""

    sample_rate: int  # Hz
    channels: int  # audio channels (2)
    patch_size: int  # samples per channel in one patch token (256)
    stride: int  # patch tokens per latent frame (16)
    chunk_size: int  # chunked attention: chunk in patch tokens (32), i.e. chunk_size // stride frames
    latent_dim: int  # 256 for SAME-S and SAME-L
    encoder: TransformerConfig
    decoder: TransformerConfig
    decoder_kernel: int  # output conv kernel over tokens: 3 with conv_mapping, else 1
    bottleneck_noise: bool  # official decoder adds 1e-3 * running_std noise to latents
    soft_clip: bool  # tanh on the decoded audio
    window_frames: int | None = None  # SAME-L: frames a token sees on each side; None: SAME-S's chunks

    @property
    def sliding(self) -> bool:
        """SAME-L's sliding-window attention (else SAME-S's midpoint-shifted chunks)."""
        return self.window_frames is not None

    @property
    def hop(self) -> int:
        """Audio samples per latent frame (4096 for SAME-S)."""
        return self.patch_size * self.stride

    @property
    def patch_dim(self) -> int:
        """Values in one patch token: channels * patch_size (512)."""
        return self.channels * self.patch_size

    @property
    def frames_per_chunk(self) -> int:
        """Latent frames per attention chunk (2 for SAME-S)."""
        return self.chunk_size // self.stride

    @property
    def length_frames(self) -> int:
        """Latent frames that encode pads audio to a multiple of, and decode pads latents to: a
        whole attention chunk for SAME-S (2 frames, 8192 samples), one frame for SAME-L."""
        return 1 if self.sliding else self.frames_per_chunk

    @property
    def frame_tokens(self) -> int:
        """Tokens of one frame in the transformer: its stride patch tokens plus one learned token (17)."""
        return self.stride + 1

    def to_dict(self) -> dict[str, Any]:
        """The fields, ``window_frames`` only for sliding attention: a SAME-S manifest is unchanged."""
        d = asdict(self)
        if d["window_frames"] is None:
            del d["window_frames"]
        return d


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise UnsupportedConfigError(f"unsupported SAME configuration: {what}")


def _side(block: dict[str, Any], name: str, io_dim: int) -> tuple[TransformerConfig, dict[str, Any]]:
    if block.get("type") != "same":
        raise UnsupportedConfigError(f"unsupported {name} type {block.get('type')!r} (expected 'same')")
    c = block["config"]
    _require(len(c["c_mults"]) == 1 and len(c["strides"]) == 1,
             f"{name} has {len(c['c_mults'])} resampling blocks (SAME has exactly one)")
    window = c.get("sliding_window")
    if window is None:
        _require(c.get("chunk_midpoint_shift", False), f"{name} has chunk_midpoint_shift off")
    else:
        _require(isinstance(window, list) and len(window) == 2 and window[0] == window[1] and window[0] >= 0,
                 f"{name} sliding_window {window} (only a symmetric window [w, w] of whole frames is implemented)")
    _require(c.get("differential", True), f"{name} has differential attention off")
    _require(c.get("dyt", True), f"{name} uses RMSNorm instead of DyT")
    for flag in ("conformer", "layer_scale", "feat_scale", "cross_attn", "causal"):
        _require(not c.get(flag, False), f"{name} sets {flag}")
    _require(c.get("mapping_bias", True), f"{name} has mapping_bias off")
    width = c["channels"] * c["c_mults"][0]
    _require(width != io_dim, f"{name} width equals the patch dimension (no mapping layer)")
    head_dim = min(c.get("dim_heads", 128), width)
    _require(width % head_dim == 0, f"{name} width {width} is not a multiple of dim_heads {head_dim}")
    stride = c["strides"][0]
    sinusoidal = c.get("sinusoidal_blocks", [0])
    cfg = TransformerConfig(
        width=width,
        head_dim=head_dim,
        depth=c["transformer_depths"][0],
        ff_mult=c.get("ff_mult", 3),
        sinusoidal_blocks=sinusoidal[0] if isinstance(sinusoidal, list) else int(sinusoidal),
        mask_noise=float(c.get("mask_noise", 0.0)),
        output_tokens=1 if c.get("variable_stride", False) else (1 if name == "encoder" else stride),
    )
    _require(cfg.depth >= 2 or window is not None,
             f"{name} has depth {cfg.depth} (the midpoint shift needs at least 2 blocks)")
    return cfg, c


def parse_config(raw: dict[str, Any]) -> SameConfig:
    """Build a ``SameConfig`` from a parsed ``model_config.json`` (either official layout)."""
    try:
        model = raw["model"]
        if "encoder" not in model:  # full Stable Audio 3 checkpoint: AE nested under the pretransform
            model = model["pretransform"]["config"]
        pre = model["pretransform"]
        if pre.get("type") != "patched":
            raise UnsupportedConfigError(f"unsupported pretransform {pre.get('type')!r} (expected 'patched')")
        pc = pre["config"]
        _require(pc.get("oversampling", 1) == 1, "pretransform oversampling")
        _require(pc.get("postfilter_channels", 0) == 0, "pretransform postfilter")
        patch_dim = pc["channels"] * pc["patch_size"]
        enc, ec = _side(model["encoder"], "encoder", patch_dim)
        dec, dc = _side(model["decoder"], "decoder", patch_dim)
        _require(ec["in_channels"] == patch_dim and dc["out_channels"] == patch_dim,
                 "encoder/decoder io channels do not match the patch size")
        _require(ec.get("sliding_window") == dc.get("sliding_window"),
                 "encoder and decoder differ in attention (sliding_window)")
        window = ec.get("sliding_window")
        # The official default chunk_size (32) when absent; unused by sliding attention.
        stride, chunk = ec["strides"][0], ec.get("chunk_size", 32)
        _require(ec["strides"] == dc["strides"] and chunk == dc.get("chunk_size", 32),
                 "encoder and decoder differ in stride or chunk size")
        _require(not ec.get("conv_mapping", False), "encoder conv_mapping (k=3 input conv)")
        _require(window is not None or (chunk % stride == 0 and (chunk // stride) % 2 == 0),
                 f"chunk_size {chunk} must be an even multiple of the stride {stride}")
        bn = model["bottleneck"]
        if bn.get("type") != "softnorm":
            raise UnsupportedConfigError(f"unsupported bottleneck {bn.get('type')!r} (expected 'softnorm')")
        bc = bn["config"]
        _require(bc.get("noise_augment_dim", 0) == 0, "bottleneck noise_augment_dim")
        _require(bc.get("auto_scale", False), "bottleneck without auto_scale (running_std)")
        latent = model["latent_dim"]
        _require(ec["latent_dim"] == latent == dc["latent_dim"] == bc["dim"], "latent_dim differs between parts")
        return SameConfig(
            sample_rate=int(raw["sample_rate"]),
            channels=pc["channels"],
            patch_size=pc["patch_size"],
            stride=stride,
            chunk_size=chunk,
            latent_dim=latent,
            encoder=enc,
            decoder=dec,
            decoder_kernel=3 if dc.get("conv_mapping", False) else 1,
            bottleneck_noise=bool(bc.get("noise_regularize", False)),
            soft_clip=bool(model["decoder"].get("soft_clip", False)),
            window_frames=None if window is None else window[0],
        )
    except (KeyError, TypeError, IndexError) as e:
        raise ConfigError(f"malformed SAME model_config.json: missing or invalid field {e}") from None


def load_config(path: str | Path) -> SameConfig:
    """Read and parse a ``model_config.json``."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} is not a SAME model_config.json")
    return parse_config(raw)
