"""The SAME autoencoder in PyTorch, computing what the official stable-audio-3 model computes.

Layout conventions (batch first, tokens before features):
  audio    [B, C, T] float32 at the config's sample rate, C = 2
  patches  [B, P, C * patch_size]: a token is patch_size samples of channel 0, then channel 1, ...
  frames   [B, G, S, D]: G latent frames, each S = stride + 1 tokens of width D
  latents  [B, latent_dim, G] at sample_rate / (patch_size * stride) Hz

The midpoint-shift chunked transformer is written so that the whole-sequence path
(``SameAutoencoder.encode`` / ``decode``) and the streaming window path (``step`` / ``finish``,
used by ``export.graphs``) run the very same blocks on the very same chunks.
"""

from __future__ import annotations

import math
from copy import deepcopy

import torch
import torch.nn.functional as F
from torch import nn

from .config import SameConfig, TransformerConfig

ROPE_BASE = 10000.0
MASKED = -1e9  # attention bias of a key a query does not see: exp underflows to exactly 0
# The most inputs of one CONCATENATION XNNPACK's delegate takes: a 12-way one (SAME-L's state, one
# slice per block) runs on LiteRT's reference kernels, outside the delegate.
CONCAT_INPUTS = 4


class Folding(nn.Module):
    """A module whose forward pass uses tensors derived from its weights (scaled rows, row blocks,
    rotary tables). ``derived`` computes them from the parameters, on every call while training;
    ``fold`` computes them once and keeps them as buffers, so that an exported graph holds them as
    plain constants and the converter folds nothing per signature (same values, bit for bit)."""

    folded: tuple[str, ...] = ()

    def derived(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def constants(self) -> dict[str, torch.Tensor]:
        """``derived()``, or the buffers ``fold`` kept."""
        if not self.folded:
            return self.derived()
        return {name: getattr(self, f"folded_{name}") for name in self.folded}

    def fold(self) -> None:
        with torch.no_grad():
            tensors = self.derived()
        for name, tensor in tensors.items():
            self.register_buffer(f"folded_{name}", tensor.clone(), persistent=False)  # not views of parameters
        self.folded = tuple(tensors)


def folded_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for export with every ``Folding`` module folded (the model is unchanged)."""
    copy = deepcopy(model)
    for module in copy.modules():
        if isinstance(module, Folding):
            module.fold()
    return copy


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


def rope_tables(positions: torch.Tensor, head_dim: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position constants ``(C, S)`` [len(positions), head_dim] of the partial rotary embedding
    written as ``t * C + partner(t) * S``, times ``scale``, in a head's official dim order.

    A head's dims are [r1, r2, p1, p2] (quarters): r1/r2 are rotated as pairs, p1/p2 pass through.
    rotate-half gives ``[r1 cos - r2 sin, r2 cos + r1 sin, p1, p2]``; with ``partner(t) =
    [r2, r1, p2, p1]`` that is ``C = [cos, cos, 1, 1]`` and ``S = [-sin, sin, 0, 0]``.
    """
    angles = positions.to(torch.float32)[:, None] * rope_inv_freq(head_dim)[None, :]  # [n, head_dim // 4]
    ones, zeros = torch.ones_like(angles), torch.zeros_like(angles)
    c = torch.cat([angles.cos(), angles.cos(), ones, ones], dim=-1)
    s = torch.cat([-angles.sin(), angles.sin(), zeros, zeros], dim=-1)
    return c * scale, s * scale


def partner(t: torch.Tensor) -> torch.Tensor:
    """[..., head_dim] in a head's official order [r1, r2, p1, p2] -> [r2, r1, p2, p1]."""
    quarters = t.reshape(*t.shape[:-1], 2, 2, t.shape[-1] // 4)
    return quarters.flip(-2).reshape(t.shape)


def pair_major_rows(heads: int, head_dim: int) -> torch.Tensor:
    """The pair-major order of one projection's ``heads * head_dim`` rows, as indices into the
    official per-head order ([r1, r2, p1, p2] quarters within each head).

    Pair-major is ``[pair][half][head][j]``: pair 0 holds every head's r1 then every head's p1,
    pair 1 every r2 then every p2. A dim's rotary partner then sits at the same offset in the other
    pair, half a projection away, so the partner of every dim is two long contiguous blocks.
    """
    quarter = head_dim // 4
    pair, half, head, j = torch.meshgrid(torch.arange(2), torch.arange(2), torch.arange(heads), torch.arange(quarter),
                                         indexing="ij")
    return (head * head_dim + (2 * half + pair) * quarter + j).reshape(-1)


def _pair_major(table: torch.Tensor, heads: int) -> torch.Tensor:
    """A per-head table [n, head_dim] (official dim order) -> [n, 2, heads * head_dim / 2], pair-major."""
    n, head_dim = table.shape
    quarters = table.reshape(n, 2, 2, 1, head_dim // 4).transpose(1, 2)  # [n, pair, half, 1, j]
    # A concatenation, not an expand: the converter folds it into a constant (an expand, or a
    # multiply by ones, of parameters would stay in the graph as a BROADCAST_TO).
    return torch.cat([quarters] * heads, dim=3).reshape(n, 2, heads * head_dim // 2)


class DifferentialAttention(Folding):
    """Differential self-attention over fixed-length chunks: ``SDPA(q, k, v) - SDPA(q2, k2, v)``.

    Rotary positions restart at 0 in every chunk, so the rotary tables are constants of the chunk
    length (with the softmax scale folded into the queries' tables).

    Layout, chosen for the exported graph: ``qkv.weight`` holds its rows as [q, q2, k, k2, v]
    (``export.checkpoint`` reorders the official [q, k, v, q2, k2] at load time), and the rows of
    q, q2, k and k2 in pair-major order (``pair_major_rows``), so that the three projections are
    contiguous row blocks of one weight and the rotary partner of a whole projection is its other
    contiguous half. The q/k norms fold into constants: ``alpha`` scales the projection
    rows, ``gamma`` and ``beta`` the rotary tables. Both attention maps run as one batch matrix
    multiply and one softmax, and ``softmax(q k^T) - softmax(q2 k2^T)`` multiplies ``v`` once.
    """

    def __init__(self, width: int, head_dim: int, chunk_len: int, frame_tokens: int = 1, halo: int | None = None) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"head_dim {head_dim} is not a multiple of 4 (the rotary embedding's quarters)")
        self.width, self.head_dim, self.heads, self.chunk_len = width, head_dim, width // head_dim, chunk_len
        self.halo, self.frame_tokens = halo, frame_tokens
        self.qkv = nn.Linear(width, 5 * width, bias=False)  # rows: q, q2, k, k2 (pair-major), v
        self.out = nn.Linear(width, width, bias=False)
        self.q_norm = DynamicTanh(head_dim)
        self.k_norm = DynamicTanh(head_dim)
        # With a halo, a block's keys are its tokens plus ``halo`` either side, the queries the
        # middle: rotary positions only enter as differences, so they restart in every block.
        h = halo or 0
        keys, queries = torch.arange(chunk_len + 2 * h), torch.arange(h, h + chunk_len)
        scale = head_dim**-0.5
        for name, pos, sc in (("q", queries, scale), ("k", keys, 1.0),
                              ("q_last", queries[frame_tokens - 1 :: frame_tokens], scale)):
            c, s = rope_tables(pos, head_dim, sc)
            self.register_buffer(f"rope_{name}_c", c, persistent=False)
            self.register_buffer(f"rope_{name}_s", s, persistent=False)
        if halo is not None:
            # The sliding window: query i sees key j iff |i - j| <= halo; a large negative, not
            # -inf, so that a row of padding keys stays finite.
            for name, pos in (("q", queries), ("q_last", queries[frame_tokens - 1 :: frame_tokens])):
                band = (pos[:, None] - keys[None, :]).abs() <= halo
                self.register_buffer(f"band_{name}", torch.where(band, 0.0, MASKED), persistent=False)

    def _rotary(self, norm: DynamicTanh, c: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The norm and rotary constants of one projection pair: ``(mix, shift)``, [n, 1 (map), 2
        (pair p), 2 (pair p' of t), D / 2] and [n, 1, 2, D / 2], n = len(c).

        ``rope(gamma * tanh(alpha * W x) + beta)`` is ``t * C' + partner(t) * S' + B'`` with
        ``t = tanh((alpha W) x)``: the norm's parameters live in the weight and these tables.
        Pair p of the result is t[p] * C'[p] + t[1 - p] * S'[p]: a 2 x 2 mix of t's pairs, one
        broadcast multiply and one sum (swapping t's pairs cost two slices, a concatenation and
        a reshape copy).
        """
        scale_c = _pair_major(norm.gamma * c, self.heads).unbind(1)  # C' of pair 0, of pair 1: [n, D / 2]
        scale_s = _pair_major(partner(norm.gamma) * s, self.heads).unbind(1)
        shift = _pair_major(norm.beta * c + partner(norm.beta) * s, self.heads)[:, None]
        mix = torch.stack([torch.stack([scale_c[0], scale_s[0]], 1), torch.stack([scale_s[1], scale_c[1]], 1)], 1)
        return mix[:, None], shift

    def derived(self) -> dict[str, torch.Tensor]:
        """The projections' row blocks (q and k rows scaled by their norm's alpha) and the rotary
        constants of the queries, of the read-out queries and of the keys."""
        w, weight = self.width, self.qkv.weight
        out = {"q_weight": weight[: 2 * w] * self.q_norm.alpha, "k_weight": weight[2 * w : 4 * w] * self.k_norm.alpha,
               "v_weight": weight[4 * w :]}
        for name, norm in (("q", self.q_norm), ("q_last", self.q_norm), ("k", self.k_norm)):
            out[f"{name}_mix"], out[f"{name}_shift"] = self._rotary(norm, getattr(self, f"rope_{name}_c"),
                                                                    getattr(self, f"rope_{name}_s"))
        return out

    def _rotated(self, x: torch.Tensor, weight: torch.Tensor, mix: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Normed, rotated projections of both maps: [B * N, D] -> [B, N, 2 (map), 2 (pair), D / 2],
        N = len(mix); ``weight`` the alpha-scaled rows, ``mix`` and ``shift`` from ``_rotary``."""
        return self._mixed(torch.tanh(F.linear(x, weight)), mix, shift)

    @staticmethod
    def _mixed(t: torch.Tensor, mix: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """``tanh`` of the alpha-scaled projections [B * N, 2 * D] (or [..., N, 2 * D]) -> rotated
        [B, N, 2 (map), 2 (pair), D / 2], N = len(mix)."""
        n, w = mix.shape[0], t.shape[-1] // 2
        return (t.reshape(-1, n, 2, 1, 2, w // 2) * mix).sum(dim=4) + shift

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, N, 2 (map), 2 (pair), D / 2] -> [B * heads * 2, N, head_dim] (a head's dims in the
        order [r1, p1, r2, p2], the same for queries and keys: their dot products are unchanged)."""
        b, n = t.shape[:2]
        t = t.reshape(b, n, 2, 4, self.heads, self.head_dim // 4).permute(0, 4, 2, 1, 3, 5)
        return t.reshape(b * self.heads * 2, n, self.head_dim)

    def forward(self, x: torch.Tensor, last_of: int | None = None, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens of B whole chunks of N = chunk_len, flattened: [B * N, D] -> [B * N, D], or only
        the last of every ``last_of`` tokens (what the encoder reads out; a plain slice):
        [B * N / last_of, D]. Every token is still a key and value.

        With a halo (``_sliding``), x is frames [B, F, S, D] instead.
        """
        if self.halo is not None:
            return self._sliding(x, last_of, key_bias)
        n, w = self.chunk_len, self.width
        b, heads, hd = x.shape[0] // n, self.heads, self.head_dim
        const = self.constants()
        if last_of is not None:
            xq, queries = x.reshape(-1, last_of, w)[:, last_of - 1], "q_last"
        else:
            xq, queries = x, "q"
        nq = const[f"{queries}_mix"].shape[0]
        q = self._heads(self._rotated(xq, const["q_weight"], const[f"{queries}_mix"], const[f"{queries}_shift"]))
        k = self._heads(self._rotated(x, const["k_weight"], const["k_mix"], const["k_shift"]))
        v = F.linear(x, const["v_weight"]).reshape(b, n, heads, hd)
        # Reshaped before the softmax: XNNPACK copies a reshape whose result feeds several ops.
        p = torch.softmax(torch.bmm(q, k.transpose(1, 2)).reshape(b * heads, 2, nq, n), dim=-1)
        v = v.permute(0, 2, 1, 3).reshape(b * heads, n, hd)
        out = torch.bmm(p[:, 0] - p[:, 1], v).reshape(b, heads, nq, hd)
        return self.out(out.permute(0, 2, 1, 3).reshape(b * nq, w))

    def _sliding(self, x: torch.Tensor, last_of: int | None, key_bias: torch.Tensor | None) -> torch.Tensor:
        """Frames [B, F, S, D], F = n * m + 2w (n blocks of m = chunk_len / S frames, with w = halo / S
        frames either side) -> the middle n * m frames' tokens [B * n * m * S, D] (or their last of
        every ``last_of``). Each frame is projected to keys and values once; then each block
        gathers its m + 2w frames and rotates them with its own positions, so a frame's result
        does not depend on where its block sits. ``key_bias`` [B * n, m + 2w], per frame of each
        block's keys: 0 for frames of the sequence, ``MASKED`` for padding."""
        b, f, s, w = x.shape
        heads, hd, halo_frames = self.heads, self.head_dim, self.halo // s
        m = self.chunk_len // s
        n = self.chunk_len + 2 * self.halo  # keys per block
        const = self.constants()
        xq = x[:, halo_frames : f - halo_frames].reshape(-1, w)
        queries = "q"
        if last_of is not None:
            xq, queries = xq.reshape(-1, last_of, w)[:, last_of - 1], "q_last"
        nq = const[f"{queries}_mix"].shape[0]
        q = self._heads(self._rotated(xq, const["q_weight"], const[f"{queries}_mix"], const[f"{queries}_shift"]))
        tokens = x.reshape(-1, w)
        t = frame_blocks(torch.tanh(F.linear(tokens, const["k_weight"])).reshape(b, f, s, 2 * w), m, halo_frames)
        k = self._heads(self._mixed(t, const["k_mix"], const["k_shift"]))
        v = frame_blocks(F.linear(tokens, const["v_weight"]).reshape(b, f, s, w), m, halo_frames)
        blocks = v.shape[0]
        scores = torch.bmm(q, k.transpose(1, 2)).reshape(blocks, heads * 2, nq, n) + getattr(self, f"band_{queries}")
        if key_bias is not None:  # broadcast over each frame's tokens: no repeated copy in the graph
            scores = scores.reshape(blocks, heads * 2, nq, n // s, s) + key_bias[:, None, None, :, None]
        p = torch.softmax(scores.reshape(blocks * heads, 2, nq, n), dim=-1)
        v = v.reshape(blocks, n, heads, hd).permute(0, 2, 1, 3).reshape(blocks * heads, n, hd)
        out = torch.bmm(p[:, 0] - p[:, 1], v).reshape(blocks, heads, nq, hd)
        return self.out(out.permute(0, 2, 1, 3).reshape(blocks * nq, w))


def stack(tensors: list[torch.Tensor], dim: int) -> torch.Tensor:
    """``torch.stack`` (the same values) whose every CONCATENATION has at most ``CONCAT_INPUTS``
    inputs: tensors are joined in groups, level by level. Each level's joins are reshaped between
    the flat and the stacked layout before the next level joins them, as the converter would fold
    nested concatenations along one axis back into one."""
    if len(tensors) <= CONCAT_INPUTS:
        return torch.stack(tensors, dim)
    if dim == tensors[0].dim():  # a new last axis: stack along a trailing axis of size 1
        return stack([t.unsqueeze(-1) for t in tensors], dim).squeeze(-1)
    shape = tensors[0].shape
    flat, stacked = (*shape[:dim], -1, *shape[dim + 1 :]), (*shape[:dim], -1, *shape[dim:])
    parts, is_flat = list(tensors), True
    while len(parts) > CONCAT_INPUTS:
        parts = [torch.cat(parts[i : i + CONCAT_INPUTS], dim).reshape(stacked if is_flat else flat)
                 for i in range(0, len(parts), CONCAT_INPUTS)]
        is_flat = not is_flat
    return torch.cat(parts, dim).reshape(stacked)


def frame_blocks(frames: torch.Tensor, m: int, w: int) -> torch.Tensor:
    """[B, n * m + 2w, ...] -> [B * n, m + 2w, ...]: each block of m frames with the w frames
    either side of it, as m + 2w slices (stride m; 1 for one-frame blocks), which the converter
    writes as plain slices and a concatenation."""
    n = (frames.shape[1] - 2 * w) // m
    blocks = stack([frames[:, k : k + n * m : m] for k in range(m + 2 * w)], dim=2)
    return blocks.reshape(-1, *blocks.shape[2:])


class GatedFeedForward(Folding):
    """SwiGLU feed-forward (or the official sine-gated variant) with biases. ``up`` holds the value
    rows then the gate rows (the official layout): two row blocks, two projections, no slicing."""

    def __init__(self, width: int, mult: int, sine: bool) -> None:
        super().__init__()
        self.up = nn.Linear(width, 2 * mult * width)
        self.down = nn.Linear(mult * width, width)
        self.sine = sine
        self.hidden = mult * width

    def derived(self) -> dict[str, torch.Tensor]:
        """``up``'s value and gate row blocks, and their biases."""
        h, weight, bias = self.hidden, self.up.weight, self.up.bias
        return {"value_weight": weight[:h], "value_bias": bias[:h], "gate_weight": weight[h:], "gate_bias": bias[h:]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        const = self.constants()
        a = F.linear(x, const["value_weight"], const["value_bias"])
        gate = F.linear(x, const["gate_weight"], const["gate_bias"])
        gate = torch.sin(math.pi * gate) if self.sine else F.silu(gate)
        return self.down(a * gate)


class TransformerBlock(nn.Module):
    """Pre-norm block: DyT, differential attention, DyT, gated feed-forward."""

    def __init__(self, cfg: TransformerConfig, chunk_len: int, index: int, frame_tokens: int = 1,
                 halo: int | None = None) -> None:
        super().__init__()
        self.attn_norm = DynamicTanh(cfg.width)
        self.attn = DifferentialAttention(cfg.width, cfg.head_dim, chunk_len, frame_tokens, halo)
        self.ff_norm = DynamicTanh(cfg.width)
        self.ff = GatedFeedForward(cfg.width, cfg.ff_mult, cfg.uses_sine(index))

    def forward(self, x: torch.Tensor, last_of: int | None = None, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        """[B * N, D] -> [B * N, D], B whole chunks, or only the last of every ``last_of`` tokens
        (see ``DifferentialAttention``). Tokens stay 2-D through the blocks: the converter would
        flatten them for every projection, and XNNPACK copies a reshape whose result feeds several.
        With a halo, x is frames [B, F, S, D] (see ``DifferentialAttention._sliding``), and the
        result the middle frames' tokens."""
        h = self.attn(self.attn_norm(x), last_of, key_bias)
        if self.attn.halo is not None:
            halo_frames = self.attn.halo // x.shape[2]
            x = x[:, halo_frames : x.shape[1] - halo_frames].reshape(-1, x.shape[-1])
        if last_of is not None:
            x = x.reshape(-1, last_of, x.shape[-1])[:, last_of - 1]
        x = x + h
        return x + self.ff(self.ff_norm(x))


class MidpointShiftTransformer(nn.Module):
    """SAME-S's chunked attention: blocks [0, depth/2) see chunks of ``m = frames_per_chunk`` whole
    frames (frames mk .. mk+m-1); the rest see chunks shifted by m/2 frames, the sequence extended by a
    copy of its first and last m/2 frames. Every token's output therefore depends only on a
    bounded neighbourhood, which is what makes exact streaming possible.
    """

    def __init__(self, cfg: TransformerConfig, frames_per_chunk: int, frame_tokens: int) -> None:
        super().__init__()
        self.frames_per_chunk, self.frame_tokens = frames_per_chunk, frame_tokens
        self.half = frames_per_chunk // 2
        self.split = cfg.depth // 2
        chunk_len = frames_per_chunk * frame_tokens
        self.blocks = nn.ModuleList(TransformerBlock(cfg, chunk_len, i, frame_tokens) for i in range(cfg.depth))

    def _chunked(self, x: torch.Tensor, blocks: nn.ModuleList, last_token_only: bool = False) -> torch.Tensor:
        b, g, s, d = x.shape
        y = x.reshape(b * g * s, d)  # whole chunks of frames_per_chunk frames, flattened
        for block in blocks[:-1]:
            y = block(y)
        if last_token_only:  # the encoder reads out only each frame's last token: skip the rest
            return blocks[-1](y, last_of=s).reshape(b, g, 1, d)
        return blocks[-1](y).reshape(b, g, s, d)

    def first_half(self, x: torch.Tensor) -> torch.Tensor:
        """[B, G, S, D] -> [B, G, S, D], chunks aligned to frame 0 (G a multiple of m)."""
        return self._chunked(x, self.blocks[: self.split])

    def second_half(self, x: torch.Tensor, last_token_only: bool = False) -> torch.Tensor:
        """[B, G, S, D] -> [B, G, S, D] (or [B, G, 1, D], each frame's last token), chunks aligned
        to the first frame given."""
        return self._chunked(x, self.blocks[self.split :], last_token_only)

    def forward(self, x: torch.Tensor, last_token_only: bool = False) -> torch.Tensor:
        """Whole sequence, as the official model: [B, G, S, D] -> [B, G, S, D] (or [B, G, 1, D],
        each frame's last token, computing the last block for those tokens only)."""
        h = self.first_half(x)
        h = torch.cat([h[:, : self.half], h, h[:, -self.half :]], dim=1)
        return self.second_half(h, last_token_only)[:, self.half : -self.half]

    def step(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor, last_token_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming window.

        x: [B, G, S, D] new frames (G a multiple of m); state: [B, m/2, S, D], the first-half
        output of the previous window's last m/2 frames; first: [1] float, 1.0 at stream start
        (then the state is ignored and the start copy is used, as the whole-sequence model does).
        Returns the finished frames [B, G, S, D] (the previous window's last m/2 frames, then this
        window's first G - m/2; at stream start the first m/2 are the discarded copy) and the next
        state. ``last_token_only``: the finished frames hold only their last token, [B, G, 1, D].
        """
        h = self.first_half(x)
        f = first.reshape(1, 1, 1, 1)
        # Blend with exact 0/1 weights: x * 1 + y * 0 == x in floating point.
        prev = h[:, : self.half] * f + state * (1.0 - f)
        y = self.second_half(torch.cat([prev, h[:, : -self.half]], dim=1), last_token_only)
        return y, h[:, -self.half :]

    def finish(self, state: torch.Tensor, last_token_only: bool = False) -> torch.Tensor:
        """End of stream: the last m/2 frames, paired with their end copy. [B, m/2, S or 1, D]."""
        return self.second_half(torch.cat([state, state], dim=1), last_token_only)[:, : self.half]


class SlidingWindowTransformer(nn.Module):
    """SAME-L's attention: every block sees the whole sequence, each token the tokens up to
    ``window_frames`` frames away (``w * S`` tokens, either side), the band clipped at the ends.

    Computed in blocks of ``block_frames`` frames, each block's keys its own tokens plus w frames
    of its neighbours' (zeros, masked off, past the ends): a query's band never leaves its block
    and halo, so this is the whole-sequence attention at a cost linear in the length. The block
    size changes only the order of float sums; one frame (the default) makes every frame's
    computation the same whatever the window around it, so that streamed windows of any sizes
    equal the whole sequence bit for bit.
    """

    def __init__(self, cfg: TransformerConfig, window_frames: int, frame_tokens: int, block_frames: int = 1) -> None:
        super().__init__()
        self.window_frames, self.frame_tokens, self.block_frames = window_frames, frame_tokens, block_frames
        block_len, halo = block_frames * frame_tokens, window_frames * frame_tokens
        self.blocks = nn.ModuleList(TransformerBlock(cfg, block_len, i, frame_tokens, halo) for i in range(cfg.depth))

    def _run(self, block: TransformerBlock, haloed: torch.Tensor, frame_bias: torch.Tensor, last: bool) -> torch.Tensor:
        """One block over [B, n * m + 2w, S, D] (``frame_bias`` [n * m + 2w], per frame) -> [B, n * m, S or 1, D]."""
        b, _, s, d = haloed.shape
        bias = frame_blocks(frame_bias[None], self.block_frames, self.window_frames)
        if b > 1:
            bias = bias.repeat(b, 1)
        return block(haloed, s if last else None, bias).reshape(b, -1, 1 if last else s, d)

    def forward(self, x: torch.Tensor, last_token_only: bool = False) -> torch.Tensor:
        """Whole sequence, as the official model: [B, G, S, D] -> [B, G, S, D] (or [B, G, 1, D],
        each frame's last token, computing the last block for those tokens only)."""
        b, g, s, d = x.shape
        w, padded = self.window_frames, g + (-g % self.block_frames)
        h = F.pad(x, (0, 0, 0, 0, 0, padded - g))
        bias = frame_key_bias(torch.arange(-w, padded + w), g)
        for i, block in enumerate(self.blocks):
            h = self._run(block, F.pad(h, (0, 0, 0, 0, w, w)), bias, last_token_only and i == len(self.blocks) - 1)
        return h[:, :g]

    def step(self, x: torch.Tensor, state: torch.Tensor, key_bias: torch.Tensor,
             last_token_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One streaming window, every block running as far as its input allows.

        A block's output frame needs its input frames up to w ahead, so block i runs (i + 1) * w
        frames behind the stack's input and the stack depth * w behind: a window of n new frames
        finishes the n frames that lag (``stream_key_bias``). x: [B, n, S, D] (n a multiple of
        ``block_frames``); state: [B, depth, 2w, S, D], each block's last 2w input frames (zeros
        at stream start); key_bias: [depth, n + 2w] per frame of each block's input,
        ``stream_key_bias``. Returns [B, n, S or 1, D] and the next state."""
        n = x.shape[1]
        h, states = x, []
        for i, block in enumerate(self.blocks):
            haloed = torch.cat([state[:, i], h], dim=1)  # [B, n + 2w, S, D]
            states.append(haloed[:, n:])
            h = self._run(block, haloed, key_bias[i], last_token_only and i == len(self.blocks) - 1)
        return h, stack(states, dim=1)


def frame_key_bias(frames: torch.Tensor, total: int | None) -> torch.Tensor:
    """0 for frames of the stream (0 <= frame < total; total None: not yet known, no end), else
    ``MASKED``: the official band is clipped at both ends."""
    real = frames >= 0 if total is None else (frames >= 0) & (frames < total)
    return torch.where(real, 0.0, MASKED)


def stream_key_bias(depth: int, window_frames: int, position: int, frames: int, total: int | None) -> torch.Tensor:
    """``SlidingWindowTransformer.step``'s key bias [depth, frames + 2w] for a window of
    ``frames`` frames pushed after ``position``: block i's input holds frames
    ``position - i*w - 2w`` onwards; ``total``, the stream's length once known (the windows that
    flush the stream push padding past it). The window's output frames are
    ``position - depth*w`` onwards; those outside [0, total) are not the stream's."""
    w = window_frames
    start = position - torch.arange(depth)[:, None] * w - 2 * w
    return frame_key_bias(start + torch.arange(frames + 2 * w)[None, :], total)


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


def attention_stack(cfg: SameConfig, side: TransformerConfig) -> MidpointShiftTransformer | SlidingWindowTransformer:
    """One side's transformer, as the config's attention asks: SAME-S's chunks or SAME-L's window."""
    if cfg.sliding:
        return SlidingWindowTransformer(side, cfg.window_frames, cfg.frame_tokens)
    return MidpointShiftTransformer(side, cfg.frames_per_chunk, cfg.frame_tokens)


class SameEncoder(nn.Module):
    """Patches -> frames of tokens -> transformer -> one latent per frame."""

    def __init__(self, cfg: SameConfig) -> None:
        super().__init__()
        t = cfg.encoder
        self.stride = cfg.stride
        self.input_proj = nn.Linear(cfg.patch_dim, t.width)  # the official weight-normed k=1 conv
        self.output_token = nn.Parameter(torch.zeros(1, 1, t.width))
        self.transformer = attention_stack(cfg, t)
        self.to_latent = nn.Linear(t.width, cfg.latent_dim)

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, P, patch_dim] -> [B, P / stride, stride + 1, D]: each frame's patches, then the learned token."""
        b, p, _ = patches.shape
        x = self.input_proj(patches).reshape(b, p // self.stride, self.stride, -1)
        # Padding plus a broadcast add of a constant [S, D] table (zeros, then the token): exact
        # (x + 0 == x), and no BROADCAST_TO in the graph, an op XNNPACK does not take.
        table = F.pad(self.output_token.reshape(1, -1), (0, 0, self.stride, 0))
        return F.pad(x, (0, 0, 0, 1)) + table

    def readout(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, G, S, D] -> [B, G, latent_dim], from each frame's learned token."""
        return self.to_latent(frames[:, :, -1])


class SameDecoder(nn.Module):
    """Latents -> frames of tokens -> transformer -> output tokens -> k=3 conv over tokens -> patches."""

    def __init__(self, cfg: SameConfig) -> None:
        super().__init__()
        t = cfg.decoder
        self.stride, self.kernel = cfg.stride, cfg.decoder_kernel
        self.from_latent = nn.Linear(cfg.latent_dim, t.width)
        self.output_token = nn.Parameter(torch.zeros(1, t.output_tokens, t.width))
        self.register_buffer("not_first", (torch.arange(cfg.frame_tokens) > 0).float(), persistent=False)
        self.transformer = attention_stack(cfg, t)
        # The official weight-normed Conv1d(width, patch_dim, k), fused and stored as
        # [patch_dim, k * width] so that it runs as one matrix multiply over stacked neighbours.
        self.output_conv = nn.Linear(cfg.decoder_kernel * t.width, cfg.patch_dim)

    def embed(self, z: torch.Tensor, token_noise: torch.Tensor | None = None) -> torch.Tensor:
        """[B, G, D] model-space latents -> [B, G, stride + 1, D]: each latent, then the learned tokens."""
        b, g, d = z.shape
        if token_noise is not None:  # the reference's noisy inference only; never exported
            tokens = self.output_token.reshape(1, 1, -1, d).expand(b, g, self.stride, d) + token_noise
            return torch.cat([z[:, :, None], tokens], dim=2)
        # As the encoder's embed: padding plus a constant [S, D] table, exact and fully delegated.
        rows = self.output_token.reshape(-1, d)  # [stride, D], or [1, D]: one token for every position
        # One token for every position: [S, 1] * [1, D], not an expand (a BROADCAST_TO).
        table = self.not_first[:, None] * rows if rows.shape[0] == 1 else F.pad(rows, (0, 0, 1, 0))
        return F.pad(z[:, :, None], (0, 0, 0, self.stride)) + table

    def output_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, G, S, D] -> [B, G * stride, D], dropping each frame's latent token."""
        b, g, s, d = frames.shape
        return frames[:, :, 1:].reshape(b, g * (s - 1), d)

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
    def length_samples(self) -> int:
        """Samples the encoder pads audio to a multiple of: 8192 for SAME-S (a whole attention
        chunk), 4096 for SAME-L (one frame)."""
        return self.config.length_frames * self.config.hop

    def encode(self, audio: torch.Tensor, pruned: bool = False) -> torch.Tensor:
        """[B, C, T] float32 -> latents [B, latent_dim, G], G = ceil(T / length_samples) * length_frames.

        As the official encoder, the audio is zero-padded to a multiple of ``length_samples``, so
        SAME-S's last frame may cover padding only. ``pruned``: the last block computes only the
        read-out tokens, as the exported graphs do (the same latents, 12.5% fewer FLOPs for SAME-S).
        """
        pad = -audio.shape[-1] % self.length_samples
        patches = patchify(F.pad(audio, (0, pad)), self.config.patch_size)
        frames = self.encoder.transformer(self.encoder.embed(patches), last_token_only=pruned)
        return self.bottleneck.encode(self.encoder.readout(frames)).transpose(1, 2)

    def decode(self, latents: torch.Tensor, noise_seed: int | None = None) -> torch.Tensor:
        """[B, latent_dim, L] -> audio [B, C, G * hop] float32, G = L rounded up to a multiple of
        ``length_frames`` (SAME-S: 2; SAME-L: 1, so G = L).

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
        x = F.pad(x, (0, 0, 0, -x.shape[1] % cfg.length_frames))
        b, g, d = x.shape
        noise = None
        if gen is not None and cfg.decoder.mask_noise > 0:
            noise = torch.randn((b, g, cfg.stride, d), generator=gen) * cfg.decoder.mask_noise
        frames = self.decoder.transformer(self.decoder.embed(x, noise))
        tokens = self.decoder.output_tokens(frames)
        edge = (self.decoder.kernel - 1) // 2
        patches = self.decoder.conv(F.pad(tokens, (0, 0, edge, edge)))
        audio = unpatchify(patches, cfg.channels)
        return torch.tanh(audio) if cfg.soft_clip else audio
