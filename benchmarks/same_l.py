"""SAME-L against SAME-S on this CPU, measured in one run: per model and precision, graph size,
fidelity, offline times real time, streaming compute per hop, file-to-file memory, and what real
time asks of a CPU.

    python benchmarks/same_l.py --same-s build/bench/same-s --same-l build/bench/same-l [--quick]

Each directory holds one export per precision (``benchmarks/precision_fidelity.py``'s
``export_precisions`` writes them, from ``seeded.safetensors`` beside them). Prints a Markdown
table; writes ``same_l.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from memory import peak_rss
from speed import gflop_per_audio_second, interleaved_times, machine, stream_hops

from same_edge import Codec
from same_edge.manifest import PRECISIONS, read_manifest
from same_edge_export.config import load_config
from same_edge_export.music import synth_music


def model_rows(name: str, dirs: dict[str, Path], threads: int, seconds: float, repeats: int, stream_seconds: float,
               memory_minutes: float, work: Path) -> list[dict]:
    """One row per precision of one model: its size, fidelity (export's ``fidelity.json``: each
    graph against PyTorch fp32 on 12 s of music), offline encode and decode times real time
    (the largest windows, interleaved rounds), the stream's compute per hop (window 1), and peak
    RSS of `same-edge encode` and `decode` file to file."""
    audio = synth_music(seconds)
    rows = []
    for precision, d in dirs.items():
        m = read_manifest(d)
        with Codec.load(d, threads=threads) as codec:
            latents = codec.encode(audio)
            times = interleaved_times({"encode": lambda codec=codec: codec.encode(audio),
                                       "decode": lambda codec=codec, z=latents: codec.decode(z)}, repeats)
        fidelity = json.loads((d / "fidelity.json").read_text())
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            memory = peak_rss(d, memory_minutes, Path(tmp), threads)
        rows.append({
            "model": name, "precision": precision, "threads": threads, "attention": m.model.attention,
            "graphs_mb": (m.encoder.bytes + m.decoder.bytes) / 1e6,
            "encoder_snr_db": fidelity["encoder"]["snr_db"], "decoder_snr_db": fidelity["decoder"]["snr_db"],
            "encode_x_realtime": seconds / times["encode"][0], "decode_x_realtime": seconds / times["decode"][0],
            **stream_hops(d, threads, seconds=stream_seconds),
            "encode_peak_mb": memory["encode_peak_mb"], "decode_peak_mb": memory["decode_peak_mb"],
        })
    return rows


def measure(configs: dict[str, Path], dirs: dict[str, dict[str, Path]], threads: int = 2, seconds: float = 10.0,
            repeats: int = 3, stream_seconds: float = 10.0, memory_minutes: float = 0.25,
            work: Path = Path("build/bench")) -> dict:
    """Every model's rows (``model_rows``) and nominal GFLOP per second of audio, measured in one run."""
    work.mkdir(parents=True, exist_ok=True)
    gflop = {}
    for name, config in configs.items():
        cfg = load_config(config)
        gflop[name] = {side: gflop_per_audio_second(cfg, side) for side in ("encode", "decode")}
    rows = [r for name in configs for r in model_rows(name, dirs[name], threads, seconds, repeats, stream_seconds,
                                                      memory_minutes, work)]
    for r in rows:  # the GFLOP/s a precision sustains here: what real time asks, over what this CPU gives
        g = gflop[r["model"]]
        r["encode_gflops"] = g["encode"] * r["encode_x_realtime"]
        r["decode_gflops"] = g["decode"] * r["decode_x_realtime"]
    return {"machine": machine(), "threads": threads, "seconds": seconds, "repeats": repeats,
            "stream_seconds": stream_seconds, "memory_minutes": memory_minutes, "gflop_per_audio_second": gflop,
            "rows": rows}


def table(report: dict) -> str:
    g = report["gflop_per_audio_second"]
    lines = ["Nominal GFLOP per second of audio (encode / decode): "
             + "; ".join(f"{name} {v['encode']:.3g} / {v['decode']:.3g}" for name, v in g.items())
             + f". {report['threads']} threads; offline on {report['seconds']:g} s of music (medians of "
             f"{report['repeats']}), streaming on {report['stream_seconds']:g} s one hop at a time, memory file to file "
             f"on {report['memory_minutes'] * 60:g} s. \"GFLOP/s\": the nominal work of real time times the x RT "
             "reached, what this CPU sustains; real time needs the encode (decode) GFLOP per second of audio.\n",
             "| model | precision | graphs MB | SNR enc / dec dB | encode x RT | decode x RT | encode / decode GFLOP/s "
             "| stream p99 ms per hop enc / dec | hop ms | round-trip latency ms | peak RSS MB enc / dec |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['precision']} | {r['graphs_mb']:.1f} | {r['encoder_snr_db']:.0f} / "
                     f"{r['decoder_snr_db']:.0f} | {r['encode_x_realtime']:.2f} | {r['decode_x_realtime']:.2f} | "
                     f"{r['encode_gflops']:.3g} / {r['decode_gflops']:.3g} | {r['encoder_p99_ms']:.0f} / "
                     f"{r['decoder_p99_ms']:.0f} | {r['hop_ms']:.0f} | {r['latency_ms']:.0f} | "
                     f"{r['encode_peak_mb']:.0f} / {r['decode_peak_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--same-s", type=Path, required=True, help="SAME-S exports, one directory per precision")
    p.add_argument("--same-l", type=Path, required=True, help="SAME-L exports, one directory per precision")
    p.add_argument("--same-s-config", type=Path, default=Path("models/same-s/model_config.json"))
    p.add_argument("--same-l-config", type=Path, default=Path("models/same-l/model_config.json"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="short runs: a smoke test, not numbers to publish")
    p.add_argument("--out", type=Path, default=Path("build/bench"))
    args = p.parse_args()
    quick = dict(seconds=2.0, repeats=1, stream_seconds=2.0, memory_minutes=0.05) if args.quick else {}
    # The precisions exported under both directories (a full-size SAME-L export of all five takes an hour).
    both = [pr for pr in PRECISIONS if all((d / pr / "manifest.json").is_file() for d in (args.same_s, args.same_l))]
    report = measure({"SAME-S": args.same_s_config, "SAME-L": args.same_l_config},
                     {"SAME-S": {pr: args.same_s / pr for pr in both}, "SAME-L": {pr: args.same_l / pr for pr in both}},
                     args.threads, work=args.out, **quick)
    (args.out / "same_l.json").write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()
