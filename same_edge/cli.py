"""The ``same-edge`` command line. Errors are one line on stderr and exit status 2; no traceback."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .audio import AudioFileError, read_audio, write_audio
from .codec import Codec
from .latents import LatentFile, LatentFileError, load_latents, save_latents
from .manifest import ModelDirError, read_manifest

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "demo"
EXPORT_HINT = "same-edge export needs the export extra: pip install 'same-edge[export]'"


class CliError(Exception):
    pass


def _load(args: argparse.Namespace) -> Codec:
    if args.model is None:
        if not (DEFAULT_MODEL / "manifest.json").is_file():
            raise CliError("no --model given and no bundled demo model found; pass --model DIR (a `same-edge export` output)")
        args.model = DEFAULT_MODEL
    return Codec.load(args.model, threads=args.threads)


def _snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - test) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / err)


def cmd_encode(args: argparse.Namespace) -> None:
    codec = _load(args)
    audio, _ = read_audio(args.input, codec.sample_rate, codec.channels, args.downmix)
    z = codec.encode(audio)
    save_latents(args.output, LatentFile(z, codec.sample_rate, audio.shape[1], codec.manifest.model_id))
    print(f"{args.output}: {z.shape[1]} frames x {z.shape[0]} dims from {audio.shape[1] / codec.sample_rate:.2f} s")


def cmd_decode(args: argparse.Namespace) -> None:
    codec = _load(args)
    lf = load_latents(args.input)
    if lf.model_id != codec.manifest.model_id:
        raise CliError(f"{args.input} was encoded by model {lf.model_id}, not by {args.model} ({codec.manifest.model_id})")
    if lf.latents.shape[0] != codec.latent_dim:
        raise CliError(f"{args.input} has {lf.latents.shape[0]}-dim latents; the model takes {codec.latent_dim}")
    audio = codec.decode(lf.latents)[:, : lf.length]
    over = write_audio(args.output, audio, codec.sample_rate)
    _report_over(over)
    print(f"{args.output}: {audio.shape[1] / codec.sample_rate:.2f} s")


def cmd_roundtrip(args: argparse.Namespace) -> None:
    codec = _load(args)
    audio, _ = read_audio(args.input, codec.sample_rate, codec.channels, args.downmix)
    t0 = time.perf_counter()
    y = codec.decode(codec.encode(audio))[:, : audio.shape[1]]
    seconds = time.perf_counter() - t0
    over = write_audio(args.output, y, codec.sample_rate)
    _report_over(over)
    dur = audio.shape[1] / codec.sample_rate
    print(f"{args.output}: {dur:.2f} s, SNR {_snr_db(audio, y):.2f} dB, {dur / seconds:.1f}x real time (encode+decode)")


def _report_over(over: int) -> None:
    if over:
        print(f"warning: {over} output samples lie beyond +-1", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> None:
    m = read_manifest(args.model_dir)
    if args.json:
        print(json.dumps(m.raw, indent=2))
        return
    r = m.raw
    print(f"model      {args.model_dir} ({m.precision}: {r['precision_description']})")
    print(f"audio      {m.sample_rate} Hz, {m.channels} channels; hop {m.hop} samples -> "
          f"{m.latent_dim}-dim latents at {m.sample_rate / m.hop:.2f} Hz")
    print(f"windows    {', '.join(str(w) for w in m.windows)} chunks of {m.chunk_samples} samples")
    for side in ("encoder", "decoder"):
        g = r[side]
        print(f"{side:<10} {g['file']} ({g['bytes'] / 1e6:.1f} MB), state {g['state_shape']}, "
              f"signatures {', '.join(g['signatures'])}")
    print(f"weights    config {r['source']['config_sha256'][:12]}, checkpoint {r['source']['checkpoint_sha256'][:12]}")
    print(f"tools      {', '.join(f'{k} {v}' for k, v in r['tools'].items())}")


def cmd_export(args: argparse.Namespace) -> None:
    try:
        from same_edge_export.convert import export
    except ImportError as e:
        raise CliError(f"{EXPORT_HINT} ({e})") from None
    from same_edge_export import CheckpointError, ConfigError

    fidelity_audio, source = None, "synthetic music (same_edge_export.music, 12 s)"
    if args.fidelity_audio:
        manifest_rate = 44100
        fidelity_audio, _ = read_audio(args.fidelity_audio, manifest_rate)
        source = str(args.fidelity_audio)
    try:
        manifest = export(args.config, args.checkpoint, args.out, args.precision, args.windows,
                          fidelity_audio=fidelity_audio, fidelity_source=source, progress=not args.quiet)
    except (CheckpointError, ConfigError) as e:
        raise CliError(str(e)) from None
    fid = json.loads((Path(args.out) / "fidelity.json").read_text())
    print(f"{args.out}: {manifest['precision']}, encoder {manifest['encoder']['bytes'] / 1e6:.1f} MB, "
          f"decoder {manifest['decoder']['bytes'] / 1e6:.1f} MB; SNR vs PyTorch fp32: encoder "
          f"{fid['encoder']['snr_db']:.1f} dB, decoder {fid['decoder']['snr_db']:.1f} dB")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="same-edge", description="Run the SAME music autoencoder on CPUs through LiteRT.")
    sub = p.add_subparsers(dest="command", required=True)

    def model_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", type=Path, default=None, help="model directory (default: the bundled demo model)")
        sp.add_argument("--threads", type=int, default=None, help="CPU threads for LiteRT (default: LiteRT's choice)")

    sp = sub.add_parser("encode", help="audio file -> latent file (.npz)")
    sp.add_argument("input", type=Path)
    sp.add_argument("output", type=Path)
    sp.add_argument("--downmix", action="store_true", help="mix more than two channels down")
    model_opts(sp)
    sp.set_defaults(func=cmd_encode)

    sp = sub.add_parser("decode", help="latent file (.npz) -> audio file (.wav/.flac)")
    sp.add_argument("input", type=Path)
    sp.add_argument("output", type=Path)
    model_opts(sp)
    sp.set_defaults(func=cmd_decode)

    sp = sub.add_parser("roundtrip", help="encode then decode an audio file; print the quality")
    sp.add_argument("input", type=Path)
    sp.add_argument("output", type=Path)
    sp.add_argument("--downmix", action="store_true")
    model_opts(sp)
    sp.set_defaults(func=cmd_roundtrip)

    sp = sub.add_parser("info", help="describe a model directory")
    sp.add_argument("model_dir", type=Path)
    sp.add_argument("--json", action="store_true", help="print the whole manifest")
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("export", help="export a SAME checkpoint to LiteRT graphs (needs the export extra)")
    sp.add_argument("--config", type=Path, required=True, help="official model_config.json")
    sp.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors (official key layout)")
    sp.add_argument("--precision", default="fp32", choices=["fp32", "w16a32", "w8a32", "w8a8", "w4a8"])
    sp.add_argument("--out", type=Path, required=True, help="output directory")
    sp.add_argument("--windows", type=int, nargs="+", default=[1, 4, 16],
                    help="window sizes in attention chunks (must include 1; default 1 4 16)")
    sp.add_argument("--fidelity-audio", type=Path, default=None,
                    help="music file to measure fidelity on (default: built-in synthetic music)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, AudioFileError, LatentFileError, ModelDirError, ValueError, OSError) as e:
        print(f"same-edge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("same-edge: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
