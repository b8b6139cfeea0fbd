"""Speed of SAME-S on this CPU: LiteRT graphs per precision and thread count against PyTorch eager,
and against the machine's fp32 matrix-multiply ceiling, all measured in one run.

    python benchmarks/speed.py --models build/fidelity-same-s --out build/bench

``--models`` holds one exported SAME-S directory per precision (``benchmarks/precision_fidelity.py``
writes them, with the seeded weights it used). Prints a Markdown table; writes ``speed.json``.
Medians of ``--repeats`` runs, with the spread (max - min).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from timing import median_time

from same_edge import Codec
from same_edge.models import SAME_S_CONFIG
from same_edge_export.checkpoint import load_model
from same_edge_export.config import SameConfig
from same_edge_export.music import SAMPLE_RATE as MUSIC_RATE
from same_edge_export.music import synth_music

PRECISIONS = ("fp32", "w16a32", "w8a32", "w8a8", "w4a8")
EAGER = "PyTorch eager"  # encodes with the graphs' last-block pruning (see speed_rows)
LITERT = "same-edge LiteRT"


def gflop_per_audio_second(cfg: SameConfig, side: str) -> float:
    """Nominal GFLOP per second of audio of one direction of the whole-sequence model (19.7 for
    SAME-S): every block on every token (patches and learned tokens), both attention maps over the
    keys a query sees (SAME-S: its chunk; SAME-L: its frame and w frames either side), and the
    projections in and out."""
    t = cfg.encoder if side == "encode" else cfg.decoder
    tokens = cfg.sample_rate / cfg.hop * cfg.frame_tokens
    keys = ((2 * cfg.window_frames + 1) if cfg.sliding else cfg.frames_per_chunk) * cfg.frame_tokens
    per_token = 2 * (5 + 1 + 3 * t.ff_mult) * t.width**2 + 2 * 2 * 2 * keys * t.width  # matmuls + QK^T, AV twice
    io = cfg.patch_dim * t.width if side == "encode" else cfg.decoder_kernel * t.width * cfg.patch_dim
    patches = cfg.sample_rate / cfg.patch_size
    return (tokens * t.depth * per_token + 2 * patches * io + 2 * cfg.sample_rate / cfg.hop * cfg.latent_dim * t.width) / 1e9


def matmul_ceiling(threads: int, repeats: int) -> float:
    """fp32 GFLOP/s of a large square matmul (torch, MKL/oneDNN) with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    t, _ = median_time(lambda: a @ b, repeats)
    return 2 * 2048**3 / t / 1e9


def stream_hops(model_dir: Path, threads: int, seconds: float = 20.0) -> dict:
    """Per-hop compute of a live stream: one hop of audio pushed at a time through the encoder,
    one frame at a time through the decoder. A window-1 call runs on every m-th hop (m frames per
    chunk), so p99 is one window call and the mean is the sustained load."""
    codec = Codec.load(model_dir, threads=threads)
    audio = synth_music(seconds)
    enc, times_enc, frames = codec.stream_encoder(), [], []
    for i in range(0, audio.shape[1] - codec.hop + 1, codec.hop):
        t0 = time.perf_counter()
        frames.append(enc.push(audio[:, i : i + codec.hop]))
        times_enc.append(time.perf_counter() - t0)
    z = np.concatenate(frames, axis=1)
    dec, times_dec = codec.stream_decoder(), []
    for j in range(z.shape[1]):
        t0 = time.perf_counter()
        dec.push(np.ascontiguousarray(z[:, j : j + 1]))
        times_dec.append(time.perf_counter() - t0)
    ms = {k: np.array(v) * 1e3 for k, v in (("encoder", times_enc), ("decoder", times_dec))}
    return {"precision": codec.manifest.precision, "threads": threads, "hop_ms": codec.hop / codec.sample_rate * 1e3,
            "latency_ms": (codec.encoder_latency_samples + codec.decoder_latency_samples) / codec.sample_rate * 1e3,
            **{f"{k}_p{q}_ms": float(np.percentile(v, q)) for k, v in ms.items() for q in (50, 99)},
            **{f"{k}_mean_ms": float(v.mean()) for k, v in ms.items()}}


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), platform.machine())
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{model}, {torch.get_num_threads()} threads available, {' '.join(isa)}"


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, tuple[float, float]]:
    """Median seconds and spread (max - min) per function, timed in rounds: one warm-up round, then
    ``repeats`` rounds that each call every function once, in order. Load drifting over the run
    (the machines are shared) then lands on every runtime alike, not on whichever ran first."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return {name: (statistics.median(t), max(t) - min(t)) for name, t in times.items()}


def add_ratios(rows: list[dict], seconds: float, gflop: dict[str, float]) -> list[dict]:
    """Per row and side: times real time, speed-up over the eager row of the same thread count, and
    the share of the fp32 ceiling reached (``gflop``: nominal GFLOP per audio second per side)."""
    for r in rows:
        eager = next(e for e in rows if e["runtime"] == EAGER and e["threads"] == r["threads"])
        for side in ("encode", "decode"):
            r[f"{side}_x_realtime"] = seconds / r[f"{side}_s"]
            r[f"{side}_vs_eager"] = eager[f"{side}_s"] / r[f"{side}_s"]
            r[f"{side}_of_ceiling"] = gflop[side] * seconds / r[f"{side}_s"] / r["ceiling_gflops"]
    return rows


def speed_rows(config: Path, models: Path, audio: np.ndarray, threads_list: list[int], repeats: int,
               fp32_kernel_gflops: dict[int, float] | None = None) -> list[dict]:
    """Offline encode/decode time of PyTorch eager and every exported precision in ``models``
    (with the weights ``models/seeded.safetensors``), per thread count, with ratios to eager and
    to the fp32 matmul ceiling: the best of a large square torch matmul, measured here, and
    ``fp32_kernel_gflops`` (threads -> GFLOP/s of the fastest fp32 kernel on SAME-S's own layer
    shapes, from the kernels benchmark of the same run).

    Eager encodes with the same pruning as the graphs (the encoder's last block computes only the
    read-out tokens), and its repeats are interleaved with the graphs' (``interleaved_times``)."""
    model = load_model(config, models / "seeded.safetensors")
    seconds = audio.shape[1] / model.config.sample_rate
    gflop = {side: gflop_per_audio_second(model.config, side) for side in ("encode", "decode")}
    with torch.no_grad():
        latents = model.encode(torch.from_numpy(audio)[None], pruned=True)
    z = latents[0].numpy()[:, : -(-audio.shape[1] // 4096)]
    rows = []
    for threads in threads_list:
        ceiling = max(matmul_ceiling(threads, repeats), (fp32_kernel_gflops or {}).get(threads, 0.0))
        torch.set_num_threads(threads)
        fns: dict[str, Callable[[], object]] = {}

        def eager_encode() -> object:
            with torch.no_grad():
                return model.encode(torch.from_numpy(audio)[None], pruned=True)

        def eager_decode() -> object:
            with torch.no_grad():
                return model.decode(latents)

        fns[f"{EAGER}|fp32|encode"], fns[f"{EAGER}|fp32|decode"] = eager_encode, eager_decode
        for precision in PRECISIONS:
            d = models / precision
            if (d / "manifest.json").is_file():
                codec = Codec.load(d, threads=threads)
                fns[f"{LITERT}|{precision}|encode"] = lambda codec=codec: codec.encode(audio)
                fns[f"{LITERT}|{precision}|decode"] = lambda codec=codec: codec.decode(z)
        times = interleaved_times(fns, repeats)
        for key in dict.fromkeys(k.rsplit("|", 1)[0] for k in fns):
            runtime, precision = key.split("|")
            (enc, enc_s), (dec, dec_s) = times[f"{key}|encode"], times[f"{key}|decode"]
            rows.append({"runtime": runtime, "precision": precision, "threads": threads, "encode_s": enc, "decode_s": dec,
                         "encode_spread": enc_s, "decode_spread": dec_s, "ceiling_gflops": ceiling})
        del fns
    return add_ratios(rows, seconds, gflop)


def speed_table(rows: list[dict]) -> str:
    lines = ["| runtime | precision | threads | encode x RT | decode x RT | encode vs eager | decode vs eager | "
             "encode % of fp32 ceiling | decode % of fp32 ceiling |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        runtime = f"{r['runtime']} (encoder pruned as the graphs)" if r["runtime"] == EAGER else r["runtime"]
        lines.append(f"| {runtime} | {r['precision']} | {r['threads']} | {r['encode_x_realtime']:.1f} "
                     f"(±{r['encode_spread'] / r['encode_s'] * 50:.0f}%) | {r['decode_x_realtime']:.1f} "
                     f"(±{r['decode_spread'] / r['decode_s'] * 50:.0f}%) | {r['encode_vs_eager']:.2f} | "
                     f"{r['decode_vs_eager']:.2f} | "
                     f"{100 * r['encode_of_ceiling']:.0f} | {100 * r['decode_of_ceiling']:.0f} |")
    return "\n".join(lines)


def streaming_table(rows: list[dict]) -> str:
    lines = ["| streaming (window 1) | threads | encoder p50 / p99 / mean ms per hop | decoder p50 / p99 / mean ms per hop | "
             "hop ms | encoder p99 % of hop | decoder p99 % of hop | round-trip latency ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['threads']} | {r['encoder_p50_ms']:.1f} / {r['encoder_p99_ms']:.1f} / "
                     f"{r['encoder_mean_ms']:.1f} | {r['decoder_p50_ms']:.1f} / {r['decoder_p99_ms']:.1f} / "
                     f"{r['decoder_mean_ms']:.1f} | {r['hop_ms']:.1f} | "
                     f"{100 * r['encoder_p99_ms'] / r['hop_ms']:.0f} | {100 * r['decoder_p99_ms'] / r['hop_ms']:.0f} | "
                     f"{r['latency_ms']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=5.94, help="audio per timed call (default: two 16-chunk windows)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()

    audio = synth_music(args.seconds)
    rows = speed_rows(SAME_S_CONFIG, args.models, audio, args.threads, args.repeats)
    streaming = [stream_hops(args.models / pr, max(args.threads)) for pr in PRECISIONS
                 if (args.models / pr / "manifest.json").is_file()]
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "audio_seconds": audio.shape[1] / MUSIC_RATE, "repeats": args.repeats, "rows": rows,
              "streaming": streaming}
    (args.out / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['machine']}; {report['audio_seconds']:.2f} s of music per call, median of {args.repeats}\n")
    print(speed_table(rows) + "\n\n" + streaming_table(streaming))


if __name__ == "__main__":
    main()
