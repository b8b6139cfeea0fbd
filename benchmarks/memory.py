"""Memory and start-up: peak RSS of file-to-file encode + decode for inputs of several lengths,
and model load time cold (file pages evicted) and warm, each in a fresh process; with ``--stream``,
peak RSS of ``same-edge stream`` instead (the live-app path: window 1, one hop per block), against
the memory target of the graphs' size + ``STREAM_BUDGET_MB``.

    python benchmarks/memory.py MODEL_DIR [--minutes 1 10 60] [--stream] [--out memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from same_edge_export.music import SAMPLE_RATE, synth_music

TILE_SECONDS = 60.0
STREAM_BUDGET_MB = 200  # memory target of any command: the graphs plus this, whatever the input's length


def write_music(path: Path, minutes: float) -> Path:
    """``minutes`` of music as 16-bit WAV, written block by block (a 60 s synthesised tile repeated)."""
    tile = synth_music(min(TILE_SECONDS, minutes * 60)).T
    total = int(minutes * 60 * SAMPLE_RATE)
    with sf.SoundFile(str(path), "w", SAMPLE_RATE, 2, "PCM_16") as f:
        while total > 0:
            f.write(tile[:total])
            total -= tile.shape[0]
    return path


# The CLI, reporting its own high-water RSS as it leaves (as `same-edge` itself, through
# os._exit). A child's ru_maxrss would include the parent's RSS at fork time: this benchmark's
# parent holds torch and the models.
_CLI = ("import os, sys; from same_edge.cli import main; code = main(sys.argv[1:]); "
        "sys.stderr.write(next(ln for ln in open('/proc/self/status') if ln.startswith('VmHWM'))); "
        "sys.stderr.flush(); os._exit(code)")


def _run_measured(args: list[str]) -> tuple[float, float]:
    """Run ``same-edge ARGS``; return (peak RSS in MB, wall seconds). Raises on failure."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"same-edge {' '.join(args)} failed: {out.stderr.strip()}")
    hwm_kb = int(out.stderr.strip().splitlines()[-1].split()[1])
    return hwm_kb / 1024, seconds


def peak_rss(model_dir: Path, minutes: float, work: Path, threads: int) -> dict:
    """Peak RSS of ``same-edge encode`` then ``same-edge decode`` on ``minutes`` of music."""
    wav = write_music(work / f"music-{minutes:g}min.wav", minutes)
    latents, out = work / "latents.npz", work / "decoded.wav"
    opts = ["--model", str(model_dir), "--threads", str(threads)]
    enc_mb, enc_s = _run_measured(["encode", str(wav), str(latents), *opts])
    dec_mb, dec_s = _run_measured(["decode", str(latents), str(out), *opts])
    for f in (wav, latents, out):
        f.unlink()
    return {"minutes": minutes, "encode_peak_mb": enc_mb, "decode_peak_mb": dec_mb, "encode_s": enc_s, "decode_s": dec_s}


def stream_peak_rss(model_dir: Path, minutes: float, work: Path, threads: int) -> dict:
    """Peak RSS (MB) and wall seconds of ``same-edge stream`` on ``minutes`` of music."""
    wav = write_music(work / f"music-{minutes:g}min.wav", minutes)
    out = work / "streamed.wav"
    mb, seconds = _run_measured(["stream", str(wav), str(out), "--model", str(model_dir), "--threads", str(threads)])
    for f in (wav, out):
        f.unlink()
    return {"minutes": minutes, "stream_peak_mb": mb, "stream_s": seconds,
            "wall_realtime_factor": minutes * 60 / seconds}  # wall time includes start-up and writing the output


def stream_memory(model_dir: Path, minutes: list[float], work: Path, threads: int) -> dict:
    """The ``same-edge stream`` memory row: peak RSS per input length, its spread over the lengths
    (flat: a few MB) and whether every peak is within the graphs' size + ``STREAM_BUDGET_MB``."""
    graphs_mb = sum(f.stat().st_size for f in model_dir.glob("*.tflite")) / 1e6
    rows = [stream_peak_rss(model_dir, m, work, threads) for m in minutes]
    peaks = [r["stream_peak_mb"] for r in rows]
    return {"graphs_mb": graphs_mb, "target_mb": graphs_mb + STREAM_BUDGET_MB, "rows": rows,
            "spread_mb": max(peaks) - min(peaks), "within_target": max(peaks) <= graphs_mb + STREAM_BUDGET_MB}


_LOAD = ("import sys, time; from same_edge import Codec; "
         "t = time.perf_counter(); Codec.load(sys.argv[1]); print(time.perf_counter() - t)")


def _evict(model_dir: Path) -> None:
    """Drop the model files' clean pages from the page cache (no privileges needed)."""
    for f in model_dir.glob("*.tflite"):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def load_times(model_dir: Path, repeats: int = 5) -> dict:
    """Seconds of ``Codec.load`` in a fresh process (imports excluded): cold after evicting the
    graphs from the page cache, warm with them cached. Medians and spreads."""
    def once(cold: bool) -> float:
        if cold:
            _evict(model_dir)
        out = subprocess.run([sys.executable, "-c", _LOAD, str(model_dir)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip())

    result = {}
    for kind in ("cold", "warm"):
        once(False)
        times = [once(kind == "cold") for _ in range(repeats)]
        result[f"{kind}_s"] = float(np.median(times))
        result[f"{kind}_spread_s"] = float(max(times) - min(times))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path)
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stream", action="store_true", help="measure `same-edge stream` (not encode/decode and load)")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.stream:
            report = {"model": str(args.model), "stream": stream_memory(args.model, args.minutes, Path(tmp), args.threads)}
        else:
            rows = [peak_rss(args.model, m, Path(tmp), args.threads) for m in args.minutes]
            report = {"model": str(args.model), "load": load_times(args.model), "peak_rss": rows}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
