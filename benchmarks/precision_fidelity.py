"""Loss per precision: convert once, quantise to every precision, and tabulate each graph's
SNR and max abs error against the PyTorch fp32 model (on music), with file sizes.

    python benchmarks/precision_fidelity.py --config models/same-s/model_config.json --seed 0 --out build/fidelity
    python benchmarks/precision_fidelity.py --config model_config.json --checkpoint model.safetensors --out DIR

Without --checkpoint, seeded random weights in the official layout stand in (same shapes; the
loss of a trained model can differ).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from same_edge_export.checkpoint import load_model
from same_edge_export.convert import DEFAULT_WINDOWS, convert_graph, write_model_dir
from same_edge_export.quantize import PRECISIONS
from same_edge_export.random_weights import write_seeded_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path)
    p.add_argument("--seed", type=int, default=0, help="seed of the stand-in weights when no checkpoint is given")
    p.add_argument("--windows", type=int, nargs="+", default=list(DEFAULT_WINDOWS))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    checkpoint = args.checkpoint or write_seeded_checkpoint(args.config, args.out / "seeded.safetensors", args.seed)
    model = load_model(args.config, checkpoint)
    graphs = {side: convert_graph(model, side, args.windows) for side in ("encoder", "decoder")}
    rows = []
    for precision in PRECISIONS:
        out = args.out / precision
        manifest = write_model_dir(model, dict(graphs), out, precision, args.windows, args.config, checkpoint)
        fid = json.loads((out / "fidelity.json").read_text())
        rows.append({"precision": precision, **{f"{s}_mb": manifest[s]["bytes"] / 1e6 for s in ("encoder", "decoder")},
                     **{f"{s}_snr_db": fid[s]["snr_db"] for s in ("encoder", "decoder")},
                     **{f"{s}_max_abs_error": fid[s]["max_abs_error"] for s in ("encoder", "decoder")}})
    report = {"config": str(args.config), "checkpoint": str(args.checkpoint or f"seeded random (seed {args.seed})"),
              "signal": fid["signal"], "machine": platform.processor() or platform.machine(), "rows": rows}
    (args.out / "precision_fidelity.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| precision | encoder MB | decoder MB | encoder SNR dB | decoder SNR dB | encoder max err | decoder max err |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['precision']} | {r['encoder_mb']:.1f} | {r['decoder_mb']:.1f} | {r['encoder_snr_db']:.1f} | "
              f"{r['decoder_snr_db']:.1f} | {r['encoder_max_abs_error']:.2e} | {r['decoder_max_abs_error']:.2e} |")


if __name__ == "__main__":
    main()
