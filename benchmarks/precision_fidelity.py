"""Loss per precision: convert once, quantise to every precision, and measure each against fp32:
SNR of the latents, and SNR and mel distance of the decoded audio (encode + decode at that
precision against encode + decode in fp32), with file sizes.

    python benchmarks/precision_fidelity.py --config models/same-s/model_config.json --seed 0 --out build/fidelity
    python benchmarks/precision_fidelity.py --config model_config.json --checkpoint model.safetensors \
        --out DIR [--audio clip.flac]

Without --checkpoint, seeded random weights in the official layout stand in (same shapes; the
loss of a trained model differs). Without --audio, 12 s of the synthesised test music.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from same_edge import Codec
from same_edge.audio import read_audio
from same_edge.graph import sha256_file
from same_edge.manifest import PRECISIONS, read_manifest
from same_edge.metrics import mel_distance, snr_db
from same_edge_export.checkpoint import load_model
from same_edge_export.config import load_config
from same_edge_export.convert import DEFAULT_WINDOWS, TorchReference, convert_graph, write_model_dir
from same_edge_export.music import synth_music
from same_edge_export.random_weights import write_seeded_checkpoint


def export_precisions(config: Path, checkpoint: Path, out: Path, windows: list[int] | None = None) -> dict[str, Path]:
    """Model directories ``out/<precision>`` for every precision, converted once; directories
    already exported from the same checkpoint are kept."""
    windows = windows or list(DEFAULT_WINDOWS)
    digest = sha256_file(checkpoint)
    dirs = {p: out / p for p in PRECISIONS}
    todo = [p for p, d in dirs.items()
            if not (d / "manifest.json").is_file() or read_manifest(d).source.checkpoint_sha256 != digest]
    if todo:
        model = load_model(config, checkpoint)
        graphs = {side: convert_graph(model, side, windows) for side in ("encoder", "decoder")}
        reference = TorchReference(model, windows, config, checkpoint)  # the PyTorch side, once for all
        for precision in todo:
            write_model_dir(model, dict(graphs), dirs[precision], precision, windows, config, checkpoint,
                            reference=reference)
    return dirs


def fidelity_rows(dirs: dict[str, Path], audio: np.ndarray) -> list[dict]:
    """Each precision against fp32 on ``audio`` [2, T]: latent SNR, decoded SNR and mel distance."""
    ref = Codec.load(dirs["fp32"])
    ref_z = ref.encode(audio)
    ref_y = ref.decode(ref_z)[:, : audio.shape[1]]
    rows = []
    for precision, d in dirs.items():
        codec = Codec.load(d)
        z = codec.encode(audio)
        y = codec.decode(z)[:, : audio.shape[1]]
        rows.append({"precision": precision, "mb": sum(f.stat().st_size for f in d.glob("*.tflite")) / 1e6,
                     "latent_snr_db": snr_db(ref_z, z), "audio_snr_db": snr_db(ref_y, y),
                     "audio_mel_distance": mel_distance(ref_y, y, codec.sample_rate)})
    return rows


def fidelity_table(rows: list[dict]) -> str:
    lines = ["| precision | graphs MB | latent SNR dB | decoded SNR dB | decoded mel distance |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['mb']:.1f} | {r['latent_snr_db']:.1f} | {r['audio_snr_db']:.1f} | "
                     f"{r['audio_mel_distance']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--seed", type=int, default=0, help="seed of the stand-in weights when no checkpoint is given")
    p.add_argument("--audio", type=Path, help="music to measure on (default: 12 s synthesised)")
    p.add_argument("--windows", type=int, nargs="+", default=list(DEFAULT_WINDOWS))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    checkpoint = args.checkpoint or write_seeded_checkpoint(args.config, args.out / "seeded.safetensors", args.seed)
    dirs = export_precisions(args.config, checkpoint, args.out, args.windows)
    audio = read_audio(args.audio, load_config(args.config).sample_rate)[0] if args.audio else synth_music(12.0)
    rows = fidelity_rows(dirs, audio)
    (args.out / "precision_fidelity.json").write_text(json.dumps({"checkpoint": str(checkpoint), "rows": rows}, indent=2) + "\n")
    print(fidelity_table(rows))


if __name__ == "__main__":
    main()
