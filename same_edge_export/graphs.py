"""The exported graphs: streaming windows of the SAME encoder and decoder, with their carried state.

A window holds ``n`` attention chunks (``n * m`` latent frames, ``m = chunk_size / stride``; 2 for
SAME-S). Because the midpoint-shift attention only ever pairs neighbouring half-chunks, a window
plus a small state reproduces the whole-sequence model exactly, with no overlap recomputed:

state  ``[m/2, stride + 1, width]``: first-half transformer output of the previous window's last
       m/2 frames (zeros, and ignored, at stream start).
first  ``[1]`` float32: 1.0 for the first window of a stream, else 0.0.

Encoder window ``n``: ``audio [C, n * chunk_samples]``, state, first ->
  ``latents [latent_dim, n * m]`` (the previous window's last m/2 frames, then this window's
  first n * m - m/2; at stream start the first m/2 columns are not frames and are dropped), state.
Encoder flush: state -> ``latents [latent_dim, m/2]``, the stream's last frames.

Decoder window ``n``: ``latents [latent_dim, n * m]``, ``keep [n * m]`` (1.0 for a real latent,
0.0 for the zero padding of an odd-length stream's last window), state, ``context [k - 1, width]``
(the conv's look-back: the last output tokens of the previous window; zeros at start), first ->
  ``audio [C, n * m * hop]`` (lagging the window by m/2 frames and (k - 1) / 2 tokens; at stream
  start the first ``start_skip_samples`` are dropped), state, context.
Decoder flush: state, context -> ``audio [C, (m/2 * stride + (k-1)/2) * patch_size]``, the end.

SAME-L (sliding-window attention, w frames either side): every block's output
frame needs w frames of its input beyond it, so a window of n frames runs each block as far as its
input allows and finishes the n frames ``depth * w`` behind (``SlidingWindowTransformer.step``).
state ``[depth, 2w, stride + 1, width]`` holds each block's last 2w input frames;
``key_bias [depth, n + 2w]`` masks, per block, the frames before the stream's start and past its
end (``model.stream_key_bias``, computed by the host), so the stream flushes by pushing windows of
padding and needs no flush signature. Every frame's computation has the same shape whatever the
window, so windows of any sizes chain to the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import UnsupportedConfigError
from .model import SameAutoencoder, patchify, unpatchify


def geometry(model: SameAutoencoder) -> dict[str, object]:
    """Stream sizes for the manifest: everything a host needs to drive the graphs. A "chunk" is the
    smallest window a graph runs: an attention chunk for SAME-S, one frame for SAME-L."""
    cfg = model.config
    if cfg.sliding:
        return _sliding_geometry(model)
    half = cfg.frames_per_chunk // 2
    edge = (cfg.decoder_kernel - 1) // 2
    tail_tokens = half * cfg.stride + edge
    return {
        "frames_per_chunk": cfg.frames_per_chunk,
        "chunk_samples": cfg.frames_per_chunk * cfg.hop,
        "encoder_state_shape": [half, cfg.frame_tokens, cfg.encoder.width],
        "decoder_state_shape": [half, cfg.frame_tokens, cfg.decoder.width],
        "decoder_context_shape": [cfg.decoder_kernel - 1, cfg.decoder.width],
        "encoder_start_skip_frames": half,
        "encoder_flush_frames": half,
        "decoder_start_skip_samples": tail_tokens * cfg.patch_size,
        "decoder_flush_samples": tail_tokens * cfg.patch_size,
    }


def _sliding_geometry(model: SameAutoencoder) -> dict[str, object]:
    """SAME-L: windows of whole frames; each side lags ``depth * w`` frames, which the host skips
    at the start and flushes by pushing as many frames of padding."""
    cfg, w = model.config, model.config.window_frames
    if not w:
        raise UnsupportedConfigError("a sliding window of 0 frames carries no stream state: no window graphs")
    if cfg.decoder_kernel != 1:
        raise UnsupportedConfigError(f"a sliding-window decoder with a k={cfg.decoder_kernel} output conv has no window graph")
    lag = {side: t.depth * w for side, t in (("encoder", cfg.encoder), ("decoder", cfg.decoder))}
    return {
        "attention": "sliding",
        "window_frames": w,
        "frames_per_chunk": 1,
        "chunk_samples": cfg.hop,
        "encoder_state_shape": [cfg.encoder.depth, 2 * w, cfg.frame_tokens, cfg.encoder.width],
        "decoder_state_shape": [cfg.decoder.depth, 2 * w, cfg.frame_tokens, cfg.decoder.width],
        "decoder_context_shape": None,
        "encoder_start_skip_frames": lag["encoder"],
        "encoder_flush_frames": lag["encoder"],
        "decoder_start_skip_samples": lag["decoder"] * cfg.hop,
        "decoder_flush_samples": lag["decoder"] * cfg.hop,
    }


class _OfModel(nn.Module):
    """A graph's module: a view of the model's parts, computing one signature."""

    def __init__(self, model: SameAutoencoder) -> None:
        super().__init__()
        self.model = model


class EncoderWindow(_OfModel):
    def forward(self, audio: torch.Tensor, state: torch.Tensor, first: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.model
        frames = m.encoder.embed(patchify(audio[None], m.config.patch_size))
        # Only the frames' learned tokens are read out: the last block computes nothing else.
        done, next_state = m.encoder.transformer.step(frames, state[None], first, last_token_only=True)
        latents = m.bottleneck.encode(m.encoder.readout(done))[0].transpose(0, 1)
        return {"latents": latents, "state": next_state[0]}


class EncoderFlush(_OfModel):
    def forward(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.model
        done = m.encoder.transformer.finish(state[None], last_token_only=True)
        return {"latents": m.bottleneck.encode(m.encoder.readout(done))[0].transpose(0, 1)}


class DecoderWindow(_OfModel):
    def forward(
        self, latents: torch.Tensor, keep: torch.Tensor, state: torch.Tensor, context: torch.Tensor, first: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        m, dec = self.model, self.model.decoder
        half = dec.transformer.half
        z = dec.from_latent(m.bottleneck.decode(latents.transpose(0, 1))) * keep[:, None]
        done, next_state = dec.transformer.step(dec.embed(z[None]), state[None], first)
        # At stream start the first m/2 frames are the discarded start copy: zero them so that the
        # conv sees the whole-sequence model's zero padding before the first real token.
        # One multiply by a per-frame mask (1 - first on those frames, 1 elsewhere), not a slice,
        # a multiply and a concatenation of the window's whole output.
        head = (torch.arange(done.shape[1]) < half).to(done.dtype).reshape(1, -1, 1, 1)
        done = done * (1.0 - first.reshape(1, 1, 1, 1) * head)
        tokens = torch.cat([context[None], dec.output_tokens(done)], dim=1)
        audio = unpatchify(dec.conv(tokens), m.config.channels)[0]
        if m.config.soft_clip:
            audio = torch.tanh(audio)
        k = dec.kernel - 1
        return {"audio": audio, "state": next_state[0], "context": tokens[0, tokens.shape[1] - k :]}


class DecoderFlush(_OfModel):
    def forward(self, state: torch.Tensor, context: torch.Tensor) -> dict[str, torch.Tensor]:
        m, dec = self.model, self.model.decoder
        done = dec.transformer.finish(state[None])
        edge = (dec.kernel - 1) // 2
        tokens = dec.output_tokens(done)
        tokens = torch.cat([context[None], tokens, tokens.new_zeros(1, edge, tokens.shape[-1])], dim=1)
        audio = unpatchify(dec.conv(tokens), m.config.channels)[0]
        return {"audio": torch.tanh(audio) if m.config.soft_clip else audio}


class SlidingEncoderWindow(_OfModel):
    """SAME-L's encoder window of n frames (``SlidingWindowTransformer.step``): ``audio [C, n * hop]``,
    ``state [depth, 2w, S, width]``, ``key_bias [depth, n + 2w]`` (``model.stream_key_bias``) ->
    ``latents [latent_dim, n]``, the frames ``depth * w`` behind the audio, and the next state."""

    def forward(self, audio: torch.Tensor, state: torch.Tensor, key_bias: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.model
        frames = m.encoder.embed(patchify(audio[None], m.config.patch_size))
        done, next_state = m.encoder.transformer.step(frames, state[None], key_bias, last_token_only=True)
        return {"latents": m.bottleneck.encode(m.encoder.readout(done))[0].transpose(0, 1), "state": next_state[0]}


class SlidingDecoderWindow(_OfModel):
    """SAME-L's decoder window of n frames: ``latents [latent_dim, n]``, ``state``, ``key_bias`` ->
    ``audio [C, n * hop]``, the frames ``depth * w`` behind the latents, and the next state (the
    output conv has k = 1: nothing carried across windows but the transformer's state)."""

    def __init__(self, model: SameAutoencoder) -> None:
        if model.config.decoder_kernel != 1:
            raise UnsupportedConfigError(f"a sliding-window decoder with a k={model.config.decoder_kernel} output conv "
                                         "has no window graph")
        super().__init__(model)

    def forward(self, latents: torch.Tensor, state: torch.Tensor, key_bias: torch.Tensor) -> dict[str, torch.Tensor]:
        m, dec = self.model, self.model.decoder
        z = dec.from_latent(m.bottleneck.decode(latents.transpose(0, 1)))
        done, next_state = dec.transformer.step(dec.embed(z[None]), state[None], key_bias)
        audio = unpatchify(dec.conv(dec.output_tokens(done)), m.config.channels)[0]
        return {"audio": torch.tanh(audio) if m.config.soft_clip else audio, "state": next_state[0]}


def sliding_window_inputs(model: SameAutoencoder, side: str, frames: int) -> dict[str, torch.Tensor]:
    """Zero sample inputs of SAME-L's ``side`` window of ``frames`` frames."""
    cfg = model.config
    t = cfg.encoder if side == "encoder" else cfg.decoder
    w = cfg.window_frames
    state = torch.zeros(t.depth, 2 * w, cfg.frame_tokens, t.width)
    key_bias = torch.zeros(t.depth, frames + 2 * w)
    if side == "encoder":
        return {"audio": torch.zeros(cfg.channels, frames * cfg.hop), "state": state, "key_bias": key_bias}
    return {"latents": torch.zeros(cfg.latent_dim, frames), "state": state, "key_bias": key_bias}


def signature_names(model: SameAutoencoder, side: str, windows: Sequence[int]) -> list[str]:
    """A side's signatures: one per window size, and the flush (SAME-S only: SAME-L flushes by
    pushing windows of padding)."""
    prefix = "encode" if side == "encoder" else "decode"
    names = [f"{prefix}_{w}" for w in sorted(windows)]
    return names if model.config.sliding else [*names, f"{prefix}_flush"]


def signature_inputs(model: SameAutoencoder, name: str) -> dict[str, torch.Tensor]:
    """Zero sample inputs with the shapes of signature ``name`` (``encode_N``, ``encode_flush``,
    ``decode_N``, ``decode_flush``)."""
    cfg, g = model.config, geometry(model)
    side, _, size = name.partition("_")
    if cfg.sliding:
        return sliding_window_inputs(model, "encoder" if side == "encode" else "decoder", int(size))
    state = torch.zeros(*g["encoder_state_shape" if side == "encode" else "decoder_state_shape"])
    if size == "flush":
        return {"state": state} if side == "encode" else {"state": state, "context": torch.zeros(*g["decoder_context_shape"])}
    chunks = int(size)
    if side == "encode":
        return {"audio": torch.zeros(cfg.channels, chunks * g["chunk_samples"]), "state": state, "first": torch.ones(1)}
    frames = chunks * cfg.frames_per_chunk
    return {
        "latents": torch.zeros(cfg.latent_dim, frames),
        "keep": torch.ones(frames),
        "state": state,
        "context": torch.zeros(*g["decoder_context_shape"]),
        "first": torch.ones(1),
    }


def graph_modules(model: SameAutoencoder) -> dict[str, tuple[nn.Module, nn.Module | None]]:
    """Per side: (window module, flush module; None for SAME-L, which has no flush)."""
    if model.config.sliding:
        return {"encoder": (SlidingEncoderWindow(model).eval(), None),
                "decoder": (SlidingDecoderWindow(model).eval(), None)}
    return {
        "encoder": (EncoderWindow(model).eval(), EncoderFlush(model).eval()),
        "decoder": (DecoderWindow(model).eval(), DecoderFlush(model).eval()),
    }
