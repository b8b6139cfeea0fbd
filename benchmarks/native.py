"""libsame_edge against the Python runtime on one model, same threads, same run:

- per window call at window 1 (a live stream): p50/p99 milliseconds per hop (a window call covers
  ``frames_per_chunk`` hops), encoder and decoder, native and Python calls interleaved;
- offline encode and decode, times real time, on the same audio;
- peak RSS of ``same-edge-native roundtrip`` on 1- and 60-minute files (target: the graphs' size
  plus 50 MB, flat with length).

    python benchmarks/native.py [--model models/demo] [--threads 2] [--minutes 1 60] [--out DIR]

``measure()`` returns the numbers as a dict (``benchmarks/run.py`` can call it); ``table()``
formats them as Markdown.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from same_edge import Codec
from same_edge.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "native"


class _Options(ctypes.Structure):
    """se_model_options' first members: the library reads only the struct_size bytes given."""

    _fields_ = [("struct_size", ctypes.c_size_t), ("threads", ctypes.c_int)]


class _Lib:
    """The few libsame_edge calls the benchmark makes, through ctypes."""

    def __init__(self, build_dir: Path) -> None:
        lib = self.lib = ctypes.CDLL(str(build_dir / "libsame_edge.so"))
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.se_model_open.argtypes = [ctypes.c_char_p, vp, ctypes.POINTER(vp)]
        lib.se_last_error.restype = ctypes.c_char_p
        lib.se_model_close.argtypes = [vp]
        for name in ("se_encoder_create", "se_decoder_create"):
            getattr(lib, name).argtypes = [vp, ctypes.c_int, ctypes.POINTER(vp)]
        lib.se_stream_free.argtypes = [vp]
        lib.se_stream_push.argtypes = [vp, vp, sz, ctypes.c_int, vp, sz, ctypes.POINTER(sz)]
        for name in ("se_encode", "se_decode"):
            getattr(lib, name).argtypes = [vp, vp, sz, ctypes.c_int, vp, sz, ctypes.POINTER(sz), vp]

    def open(self, model_dir: Path, threads: int) -> ctypes.c_void_p:
        options = _Options(ctypes.sizeof(_Options), threads)
        handle = ctypes.c_void_p()
        if self.lib.se_model_open(str(model_dir).encode(), ctypes.addressof(options), ctypes.byref(handle)):
            raise RuntimeError(self.lib.se_last_error().decode())
        return handle


def _music(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """[2, n] float32: a few tones with an envelope and a little noise (speed does not depend on content)."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(seed)
    x = sum(0.1 * np.sin(2 * np.pi * f * t + p) for f, p in ((110, 0), (220, 1), (330, 2), (523, 3)))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    return (np.stack([x, np.roll(x, 100)]) + 0.01 * rng.standard_normal((2, n))).astype(np.float32)


def _percentiles(ms: list[float], per: int) -> tuple[float, float]:
    a = np.array(ms) / per
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def _window_calls(lib: _Lib, handle: ctypes.c_void_p, codec: Codec, calls: int) -> dict[str, dict[str, float]]:
    """Per-hop milliseconds of window-1 calls, native and Python alternated so both see the same load."""
    m = codec.manifest
    fpc, cs, dim = m.model.frames_per_chunk, m.model.chunk_samples, codec.latent_dim
    audio = _music(codec.sample_rate, cs * (calls + 1) / codec.sample_rate)
    enc, dec = ctypes.c_void_p(), ctypes.c_void_p()
    lib.lib.se_encoder_create(handle, 1, ctypes.byref(enc))
    lib.lib.se_decoder_create(handle, 1, ctypes.byref(dec))
    py_enc, py_dec = codec.stream_encoder(), codec.stream_decoder()
    z_out = np.zeros((dim, fpc), np.float32)
    y_out = np.zeros((codec.channels, cs), np.float32)
    got = ctypes.c_size_t()
    times: dict[str, list[float]] = {k: [] for k in ("native_enc", "native_dec", "python_enc", "python_dec")}
    for i in range(calls + 1):  # the first call of each stream (LiteRT binds its buffers) is not counted
        block = np.ascontiguousarray(audio[:, i * cs : (i + 1) * cs])
        t0 = time.perf_counter()
        lib.lib.se_stream_push(enc, block.ctypes.data, cs, 0, z_out.ctypes.data, fpc, ctypes.byref(got))
        t1 = time.perf_counter()
        z = z_out[:, : got.value].copy()
        t2 = time.perf_counter()
        lib.lib.se_stream_push(dec, z.ctypes.data, z.shape[1], 0, y_out.ctypes.data, cs, ctypes.byref(got))
        t3 = time.perf_counter()
        py_z = py_enc.push(block)
        t4 = time.perf_counter()
        py_dec.push(py_z)
        t5 = time.perf_counter()
        if i and z.shape[1] == fpc:
            times["native_enc"].append((t1 - t0) * 1e3)
            times["native_dec"].append((t3 - t2) * 1e3)
            times["python_enc"].append((t4 - t3) * 1e3)
            times["python_dec"].append((t5 - t4) * 1e3)
    lib.lib.se_stream_free(enc)
    lib.lib.se_stream_free(dec)
    out: dict[str, dict[str, float]] = {}
    for side in ("native", "python"):
        e50, e99 = _percentiles(times[f"{side}_enc"], fpc)
        d50, d99 = _percentiles(times[f"{side}_dec"], fpc)
        out[side] = {"encoder_p50_ms": e50, "encoder_p99_ms": e99, "decoder_p50_ms": d50, "decoder_p99_ms": d99}
    return out


def _offline(lib: _Lib, handle: ctypes.c_void_p, codec: Codec, seconds: float, repeats: int) -> dict[str, dict[str, float]]:
    x = _music(codec.sample_rate, seconds, seed=1)
    n = x.shape[1]
    frames = -(-n // codec.hop)
    z = np.zeros((codec.latent_dim, frames), np.float32)
    y = np.zeros((codec.channels, frames * codec.hop), np.float32)
    got = ctypes.c_size_t()
    best: dict[str, list[float]] = {k: [] for k in ("native_enc", "native_dec", "python_enc", "python_dec")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        lib.lib.se_encode(handle, x.ctypes.data, n, 0, z.ctypes.data, frames, ctypes.byref(got), None)
        t1 = time.perf_counter()
        lib.lib.se_decode(handle, z.ctypes.data, frames, 0, y.ctypes.data, frames * codec.hop, ctypes.byref(got), None)
        t2 = time.perf_counter()
        zp = codec.encode(x)
        t3 = time.perf_counter()
        codec.decode(zp)
        t4 = time.perf_counter()
        best["native_enc"].append(t1 - t0)
        best["native_dec"].append(t2 - t1)
        best["python_enc"].append(t3 - t2)
        best["python_dec"].append(t4 - t3)
    return {side: {"encode_x_realtime": seconds / float(np.median(best[f"{side}_enc"])),
                   "decode_x_realtime": seconds / float(np.median(best[f"{side}_dec"]))} for side in ("native", "python")}


def _peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident memory of same-edge-native, in MB, as it reports its own VmHWM (a child's
    rusage would count the pages of this Python process it was forked from)."""
    done = subprocess.run([*cmd, "--report-memory"], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{cmd[1]} failed: {done.stderr.strip()}")
    return float(done.stdout.split("peak RSS:")[1].split()[0])


def _roundtrip_rss(build_dir: Path, model_dir: Path, threads: int, minutes: tuple[float, ...]) -> list[dict[str, float]]:
    rows = []
    rate = read_manifest(model_dir).model.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        for m in minutes:
            src = Path(tmp) / f"in-{m}.wav"
            piece = (_music(rate, 60.0, seed=2).T * 32767).astype(np.int16)
            whole, rest = divmod(int(round(m * 60 * rate)), piece.shape[0])
            with sf.SoundFile(src, "w", rate, 2, subtype="PCM_16") as f:  # written a minute at a time
                for _ in range(whole):
                    f.write(piece)
                f.write(piece[:rest])
            t0 = time.perf_counter()
            rss = _peak_rss_mb([str(build_dir / "same-edge-native"), "roundtrip", str(src), str(Path(tmp) / "out.wav"),
                                "--model", str(model_dir), "--threads", str(threads)])
            rows.append({"minutes": m, "peak_rss_mb": rss, "seconds": time.perf_counter() - t0})
            src.unlink()
    return rows


def measure(model_dir: Path, threads: int = 2, calls: int = 60, offline_seconds: float = 30.0, repeats: int = 3,
            minutes: tuple[float, ...] = (1, 60), build_dir: Path = BUILD) -> dict:
    """Native against Python on ``model_dir`` with ``threads`` threads: window-1 calls (ms per hop),
    offline x real time, and same-edge-native's peak RSS per input length (MB)."""
    lib = _Lib(build_dir)
    handle = lib.open(model_dir, threads)
    codec = Codec.load(model_dir, threads=threads)
    try:
        result: dict = {"model": str(model_dir), "threads": threads, "calls": calls}
        windows = _window_calls(lib, handle, codec, calls)
        offline = _offline(lib, handle, codec, offline_seconds, repeats)
        for side in ("native", "python"):
            result[side] = windows[side] | offline[side]
        graphs = sum((Path(model_dir) / f).stat().st_size for f in ("encoder.tflite", "decoder.tflite")) / 2**20
        result["graphs_mb"] = graphs
        result["roundtrip_rss"] = _roundtrip_rss(build_dir, Path(model_dir), threads, minutes) if minutes else []
    finally:
        lib.lib.se_model_close(handle)
        codec.close()
    return result


def table(r: dict) -> str:
    """The numbers as Markdown."""
    lines = [f"Window-1 calls and offline speed, {r['model']}, {r['threads']} thread(s), {r['calls']} calls:", "",
             "| runtime | encoder p50 / p99 ms per hop | decoder p50 / p99 ms per hop | encode x real time "
             "| decode x real time |",
             "|---|---|---|---|---|"]
    for side in ("native", "python"):
        s = r[side]
        lines.append(f"| {side} | {s['encoder_p50_ms']:.2f} / {s['encoder_p99_ms']:.2f} | {s['decoder_p50_ms']:.2f} / "
                     f"{s['decoder_p99_ms']:.2f} | {s['encode_x_realtime']:.1f} | {s['decode_x_realtime']:.1f} |")
    if r["roundtrip_rss"]:
        lines += ["", f"Peak RSS of `same-edge-native roundtrip` (graphs {r['graphs_mb']:.1f} MB; target graphs + 50 MB):", "",
                  "| input | peak RSS MB | wall s |", "|---|---|---|"]
        lines += [f"| {row['minutes']:g} min | {row['peak_rss_mb']:.1f} | {row['seconds']:.1f} |" for row in r["roundtrip_rss"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "demo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--minutes", type=float, nargs="*", default=[1, 60])
    ap.add_argument("--build", type=Path, default=BUILD)
    ap.add_argument("--out", type=Path, default=None, help="write native.json and native.md here")
    args = ap.parse_args()
    r = measure(args.model, args.threads, args.calls, minutes=tuple(args.minutes), build_dir=args.build)
    print(table(r))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "native.json").write_text(json.dumps(r, indent=2) + "\n")
        (args.out / "native.md").write_text(table(r) + "\n")


if __name__ == "__main__":
    main()
