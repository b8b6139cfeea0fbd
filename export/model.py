"""The SAME autoencoder in PyTorch, computing what the official stable-audio-3 model computes.

Layout conventions (batch first, tokens before features):
  audio    [B, C, T] float32 at the config's sample rate, C = 2
  patches  [B, P, C * patch_size]: a token is patch_size samples of channel 0, then channel 1, ...
  groups   [B, G, S, D]: G token groups of S = stride + 1 tokens of width D
  latents  [B, latent_dim, G] at sample_rate / (patch_size * stride) Hz

The midpoint-shift chunked transformer is written so that the whole-sequence path
(``SameAutoencoder.encode`` / ``decode``) and the streaming window path (``step`` / ``finish``,
used by ``export.graphs``) run the very same blocks on the very same chunks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import SameConfig, TransformerConfig

ROPE_BASE = 10000.0


class DynamicTanh(nn.Module):
    """DyT normalisation: ``gamma * tanh(alpha * x) + beta`` with a scalar ``alpha``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.tanh(self.alpha * x) + self.beta


def rope_inv_freq(head_dim: int) -> torch.Tensor:
    """Inverse frequencies of the partial rotary embedding: it rotates the first head_dim // 2 dims."""
    rot = head_dim // 2
    return 1.0 / (ROPE_BASE ** (torch.arange(0, rot, 2, dtype=torch.float32) / rot))


class DifferentialAttention(nn.Module):
    """Differential self-attention over fixed-length chunks: ``SDPA(q, k, v) - SDPA(q2, k2, v)``.

    Rotary positions restart at 0 in every chunk, so the cos/sin tables are constants of the
    chunk length.
    """

    def __init__(self, width: int, head_dim: int, chunk_len: int) -> None:
        super().__init__()
        self.width, self.head_dim, self.heads = width, head_dim, width // head_dim
        self.qkv = nn.Linear(width, 5 * width, bias=False)  # q, k, v, q2, k2
        self.out = nn.Linear(width, width, bias=False)
        self.q_norm = DynamicTanh(head_dim)
        self.k_norm = DynamicTanh(head_dim)
        angles = torch.arange(chunk_len, dtype=torch.float32)[:, None] * rope_inv_freq(head_dim)[None, :]
        angles = torch.cat([angles, angles], dim=-1)  # [chunk_len, head_dim // 2], rotate-half layout
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)

    def _rope(self, t: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        cos, sin = (self.rope_cos, self.rope_sin) if rows is None else (self.rope_cos[rows], self.rope_sin[rows])
        rot = cos.shape[-1]
        t_rot, t_pass = t[..., :rot], t[..., rot:]
        half = rot // 2
        rotated = torch.cat([-t_rot[..., half:], t_rot[..., :half]], dim=-1)
        return torch.cat([t_rot * cos + rotated * sin, t_pass], dim=-1)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """[B, N, D] -> [B, N, D], or only the outputs at positions ``rows`` ([B, len(rows), D]):
        every position is still a key and value, but only those rows are queries."""
        b, n, w = x.shape

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, self.head_dim).transpose(1, 2)

        if rows is None:
            q, k, v, q2, k2 = (split_heads(t) for t in self.qkv(x).split(w, dim=-1))
        else:  # the same weights, split: keys and values from every row, queries from ``rows``
            weight = self.qkv.weight
            kv = F.linear(x, torch.cat([weight[w : 3 * w], weight[4 * w :]]))
            k, v, k2 = (split_heads(t) for t in kv.split(w, dim=-1))
            qq = F.linear(x[:, rows], torch.cat([weight[:w], weight[3 * w : 4 * w]]))
            q, q2 = (split_heads(t) for t in qq.split(w, dim=-1))
        q, q2 = (self._rope(self.q_norm(t), rows) for t in (q, q2))
        k, k2 = (self._rope(self.k_norm(t)) for t in (k, k2))
        out = F.scaled_dot_product_attention(q, k, v) - F.scaled_dot_product_attention(q2, k2, v)
        return self.out(out.transpose(1, 2).reshape(b, q.shape[2], self.width))


class GatedFeedForward(nn.Module):
    """SwiGLU feed-forward (or the official sine-gated variant) with biases."""

    def __init__(self, width: int, mult: int, sine: bool) -> None:
        super().__init__()
        self.up = nn.Linear(width, 2 * mult * width)
        self.down = nn.Linear(mult * width, width)
        self.sine = sine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.up(x).chunk(2, dim=-1)
        gate = torch.sin(math.pi * gate) if self.sine else F.silu(gate)
        return self.down(a * gate)


class TransformerBlock(nn.Module):
    """Pre-norm block: DyT, differential attention, DyT, gated feed-forward."""

    def __init__(self, cfg: TransformerConfig, chunk_len: int, index: int) -> None:
        super().__init__()
        self.attn_norm = DynamicTanh(cfg.width)
        self.attn = DifferentialAttention(cfg.width, cfg.head_dim, chunk_len)
        self.ff_norm = DynamicTanh(cfg.width)
        self.ff = GatedFeedForward(cfg.width, cfg.ff_mult, cfg.uses_sine(index))

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """[B, N, D] -> [B, N, D], or only positions ``rows`` (see ``DifferentialAttention``)."""
        h = self.attn(self.attn_norm(x), rows)
        x = (x if rows is None else x[:, rows]) + h
        return x + self.ff(self.ff_norm(x))


class MidpointShiftTransformer(nn.Module):
    """SAME-S's chunked attention: blocks [0, depth/2) see chunks of ``m`` whole groups
    (groups mk .. mk+m-1); the rest see chunks shifted by m/2 groups, the sequence extended by a
    copy of its first and last m/2 groups. Every token's output therefore depends only on a
    bounded neighbourhood, which is what makes exact streaming possible.
    """

    def __init__(self, cfg: TransformerConfig, groups_per_chunk: int, group_tokens: int) -> None:
        super().__init__()
        self.m, self.s = groups_per_chunk, group_tokens
        self.half = groups_per_chunk // 2
        self.split = cfg.depth // 2
        chunk_len = groups_per_chunk * group_tokens
        self.blocks = nn.ModuleList(TransformerBlock(cfg, chunk_len, i) for i in range(cfg.depth))

    def _chunked(self, x: torch.Tensor, blocks: nn.ModuleList, last_token_only: bool = False) -> torch.Tensor:
        b, g, s, d = x.shape
        y = x.reshape(b * g // self.m, self.m * s, d)
        for block in blocks[:-1]:
            y = block(y)
        if last_token_only:  # the encoder reads out only each group's last token: skip the rest
            return blocks[-1](y, torch.arange(s - 1, self.m * s, s)).reshape(b, g, 1, d)
        return blocks[-1](y).reshape(b, g, s, d)

    def first_half(self, x: torch.Tensor) -> torch.Tensor:
        """[B, G, S, D] -> [B, G, S, D], chunks aligned to group 0 (G a multiple of m)."""
        return self._chunked(x, self.blocks[: self.split])

    def second_half(self, x: torch.Tensor, last_token_only: bool = False) -> torch.Tensor:
        """[B, G, S, D] -> [B, G, S, D] (or [B, G, 1, D], each group's last token), chunks aligned
        to the first group given."""
        return self._chunked(x, self.blocks[self.split :], last_token_only)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequence, as the official model: [B, G, S, D] -> [B, G, S, D]."""
        h = self.first_half(x)
        h = torch.cat([h[:, : self.half], h, h[:, -self.half :]], dim=1)
        return self.second_half(h)[:, self.half : -self.half]

    def step(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor, last_token_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming window.

        x: [B, G, S, D] new groups (G a multiple of m); state: [B, m/2, S, D], the first-half
        output of the previous window's last m/2 groups; first: [1] float, 1.0 at stream start
        (then the state is ignored and the start copy is used, as the whole-sequence model does).
        Returns the finished groups [B, G, S, D] (the previous window's last m/2 groups, then this
        window's first G - m/2; at stream start the first m/2 are the discarded copy) and the next
        state. ``last_token_only``: the finished groups hold only their last token, [B, G, 1, D].
        """
        h = self.first_half(x)
        f = first.reshape(1, 1, 1, 1)
        # Blend with exact 0/1 weights: x * 1 + y * 0 == x in floating point.
        prev = h[:, : self.half] * f + state * (1.0 - f)
        y = self.second_half(torch.cat([prev, h[:, : -self.half]], dim=1), last_token_only)
        return y, h[:, -self.half :]

    def finish(self, state: torch.Tensor, last_token_only: bool = False) -> torch.Tensor:
        """End of stream: the last m/2 groups, paired with their end copy. [B, m/2, S or 1, D]."""
        return self.second_half(torch.cat([state, state], dim=1), last_token_only)[:, : self.half]


class SoftNormBottleneck(nn.Module):
    """``encode: (z * scale + bias) / running_std``; ``decode: z * running_std``."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(latent_dim))
        self.bias = nn.Parameter(torch.zeros(latent_dim))
        self.running_std = nn.Parameter(torch.ones(1), requires_grad=False)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """[..., latent_dim] -> [..., latent_dim]."""
        return (z * self.scale + self.bias) / self.running_std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.running_std


class SameEncoder(nn.Module):
    """Patches -> token groups -> transformer -> one latent per group."""

    def __init__(self, cfg: SameConfig) -> None:
        super().__init__()
        t = cfg.encoder
        self.stride = cfg.stride
        self.input_proj = nn.Linear(cfg.patch_dim, t.width)  # the official weight-normed k=1 conv
        self.output_token = nn.Parameter(torch.zeros(1, 1, t.width))
        self.transformer = MidpointShiftTransformer(t, cfg.groups_per_chunk, cfg.group_tokens)
        self.to_latent = nn.Linear(t.width, cfg.latent_dim)

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, P, patch_dim] -> [B, P / stride, stride + 1, D]: each group's patches, then the learned token."""
        b, p, _ = patches.shape
        x = self.input_proj(patches).reshape(b, p // self.stride, self.stride, -1)
        token = self.output_token.reshape(1, 1, 1, -1).expand(b, x.shape[1], 1, -1)
        return torch.cat([x, token], dim=2)

    def readout(self, groups: torch.Tensor) -> torch.Tensor:
        """[B, G, S, D] -> [B, G, latent_dim], from each group's learned token."""
        return self.to_latent(groups[:, :, -1])


class SameDecoder(nn.Module):
    """Latents -> token groups -> transformer -> output tokens -> k=3 conv over tokens -> patches."""

    def __init__(self, cfg: SameConfig) -> None:
        super().__init__()
        t = cfg.decoder
        self.stride, self.kernel = cfg.stride, cfg.decoder_kernel
        self.from_latent = nn.Linear(cfg.latent_dim, t.width)
        self.output_token = nn.Parameter(torch.zeros(1, t.output_tokens, t.width))
        self.transformer = MidpointShiftTransformer(t, cfg.groups_per_chunk, cfg.group_tokens)
        # The official weight-normed Conv1d(width, patch_dim, k), fused and stored as
        # [patch_dim, k * width] so that it runs as one matrix multiply over stacked neighbours.
        self.output_conv = nn.Linear(cfg.decoder_kernel * t.width, cfg.patch_dim)

    def embed(self, z: torch.Tensor, token_noise: torch.Tensor | None = None) -> torch.Tensor:
        """[B, G, D] model-space latents -> [B, G, stride + 1, D]: each latent, then the learned tokens."""
        b, g, d = z.shape
        tokens = self.output_token.reshape(1, 1, -1, d).expand(b, g, self.stride, d)
        if token_noise is not None:
            tokens = tokens + token_noise
        return torch.cat([z[:, :, None], tokens], dim=2)

    def output_tokens(self, groups: torch.Tensor) -> torch.Tensor:
        """[B, G, S, D] -> [B, G * stride, D], dropping each group's latent token."""
        b, g, s, d = groups.shape
        return groups[:, :, 1:].reshape(b, g * (s - 1), d)

    def conv(self, tokens: torch.Tensor) -> torch.Tensor:
        """Valid conv over tokens: [B, M + k - 1, D] -> [B, M, patch_dim]."""
        m = tokens.shape[1] - self.kernel + 1
        stacked = torch.cat([tokens[:, i : i + m] for i in range(self.kernel)], dim=-1)
        return self.output_conv(stacked)


def patchify(audio: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B, C, T] (T a multiple of patch_size) -> [B, T / patch_size, C * patch_size]."""
    b, c, t = audio.shape
    return audio.reshape(b, c, t // patch_size, patch_size).permute(0, 2, 1, 3).reshape(b, t // patch_size, c * patch_size)


def unpatchify(patches: torch.Tensor, channels: int) -> torch.Tensor:
    """[B, P, C * patch_size] -> [B, C, P * patch_size]."""
    b, p, n = patches.shape
    return patches.reshape(b, p, channels, n // channels).permute(0, 2, 1, 3).reshape(b, channels, -1)


class SameAutoencoder(nn.Module):
    """The whole SAME autoencoder. ``encode``/``decode`` are the whole-sequence reference."""

    def __init__(self, cfg: SameConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = SameEncoder(cfg)
        self.decoder = SameDecoder(cfg)
        self.bottleneck = SoftNormBottleneck(cfg.latent_dim)

    @property
    def chunk_samples(self) -> int:
        """Samples in one attention chunk (8192 for SAME-S): the encoder pads audio to a multiple."""
        return self.config.chunk_size * self.config.patch_size

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, C, T] float32 -> latents [B, latent_dim, G], G = ceil(T / chunk_samples) * m.

        As the official encoder, the audio is zero-padded to a whole number of chunks, so the
        last frames may cover padding only.
        """
        pad = -audio.shape[-1] % self.chunk_samples
        patches = patchify(F.pad(audio, (0, pad)), self.config.patch_size)
        groups = self.encoder.transformer(self.encoder.embed(patches))
        return self.bottleneck.encode(self.encoder.readout(groups)).transpose(1, 2)

    def decode(self, latents: torch.Tensor, noise_seed: int | None = None) -> torch.Tensor:
        """[B, latent_dim, L] -> audio [B, C, G * hop] float32, G = L rounded up to a multiple of m.

        Deterministic by default. With ``noise_seed`` the official inference noise is added
        (1e-3 * running_std on the latents, ``mask_noise`` on the learned tokens), reproducibly.
        """
        cfg = self.config
        z = self.bottleneck.decode(latents.transpose(1, 2))
        gen = torch.Generator().manual_seed(noise_seed) if noise_seed is not None else None
        if gen is not None and cfg.bottleneck_noise:
            z = z + torch.randn(z.shape, generator=gen) * self.bottleneck.running_std * 1e-3
        x = self.decoder.from_latent(z)
        # Odd lengths are padded with zeros in model space, after the input projection.
        x = F.pad(x, (0, 0, 0, -x.shape[1] % cfg.groups_per_chunk))
        b, g, d = x.shape
        noise = None
        if gen is not None and cfg.decoder.mask_noise > 0:
            noise = torch.randn((b, g, cfg.stride, d), generator=gen) * cfg.decoder.mask_noise
        groups = self.decoder.transformer(self.decoder.embed(x, noise))
        tokens = self.decoder.output_tokens(groups)
        edge = (self.decoder.kernel - 1) // 2
        patches = self.decoder.conv(F.pad(tokens, (0, 0, edge, edge)))
        audio = unpatchify(patches, cfg.channels)
        return torch.tanh(audio) if cfg.soft_clip else audio
