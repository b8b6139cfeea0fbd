"""The ``same-edge`` command line.

Files are processed block by block (memory does not grow with their length) and written
atomically. Errors are one line on stderr and exit status 2, never a traceback or a partial file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .audio import AudioFileError, AudioReader, AudioWriter
from .codec import Codec
from .latents import LatentFileError, LatentHeader, LatentReader, LatentWriter
from .manifest import ModelDirError, read_manifest
from .metrics import QualityMeter
from .models import DEMO_MODEL_DIR

DEFAULT_MODEL = DEMO_MODEL_DIR
EXPORT_HINT = "same-edge export needs the export extra: pip install 'same-edge[export]'"
PROGRESS_MIN_SECONDS = 10.0
DECODE_BLOCK_FRAMES = 64
DEMO_CLIP = "clip.flac"


class CliError(Exception):
    pass


def _model_dir(given: Path | None) -> Path:
    """The model directory named on the command line, else the bundled demo model."""
    if given is not None:
        return given
    if not (DEFAULT_MODEL / "manifest.json").is_file():
        raise CliError("no model given and no bundled demo model is installed; "
                       "name a directory written by `same-edge export`")
    return DEFAULT_MODEL


def _load(args: argparse.Namespace, sides: tuple[str, ...] = ("encoder", "decoder")) -> Codec:
    args.model = _model_dir(args.model)
    if args.threads is not None and args.threads < 1:
        raise CliError("--threads must be at least 1")
    return Codec.load(args.model, threads=args.threads, sides=sides)


def _progress(seconds: float, desc: str) -> tqdm:
    return tqdm(total=round(seconds, 1), unit="s", desc=desc, disable=seconds < PROGRESS_MIN_SECONDS, leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")


def _reader(args: argparse.Namespace, codec: Codec) -> AudioReader:
    return AudioReader(args.input, codec.sample_rate, codec.channels, getattr(args, "downmix", False))


def _encode_blocks(codec: Codec, reader: AudioReader, bar: tqdm) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(audio block, latents finished by it); the last item carries the flush."""
    enc = codec.stream_encoder(largest_window=None)
    for block in reader.blocks():
        yield block, enc.push(block)
        bar.update(block.shape[1] / codec.sample_rate)
    yield np.zeros((codec.channels, 0), np.float32), enc.flush()


def cmd_encode(args: argparse.Namespace) -> None:
    codec = _load(args, sides=("encoder",))
    reader = _reader(args, codec)
    length = 0
    with LatentWriter(args.output, codec.latent_dim) as latents, _progress(reader.seconds, "encode") as bar:
        for block, z in _encode_blocks(codec, reader, bar):
            length += block.shape[1]
            latents.write(z)
        latents.header = LatentHeader(codec.sample_rate, length, codec.manifest.model_id, reader.input_rate)
    print(f"{args.output}: {latents.frames} frames x {codec.latent_dim} dims from {length / codec.sample_rate:.2f} s of audio")


def cmd_decode(args: argparse.Namespace) -> None:
    codec = _load(args, sides=("decoder",))
    with LatentReader(args.input) as latents:
        _decode_file(args, codec, latents)


def _decode_file(args: argparse.Namespace, codec: Codec, latents: LatentReader) -> None:
    h, (dim, frames) = latents.header, latents.shape
    if h.model_id != codec.manifest.model_id:
        raise CliError(f"{args.input} was encoded by another model ({h.model_id}); {args.model} is {codec.manifest.model_id}")
    if dim != codec.latent_dim or not (frames - 1) * codec.hop < h.length <= frames * codec.hop:
        raise CliError(f"{args.input} holds {dim} x {frames} latents for {h.length} samples, "
                       f"which this model ({codec.latent_dim}-dim, hop {codec.hop}) cannot have produced")
    dec = codec.stream_decoder(largest_window=None)
    remaining = h.length
    out_rate = h.source_rate if args.keep_rate else codec.sample_rate
    with AudioWriter(args.output, codec.sample_rate, codec.channels, out_rate) as writer, \
            _progress(h.length / codec.sample_rate, "decode") as bar:
        for block in itertools.chain(latents.blocks(DECODE_BLOCK_FRAMES), [None]):
            y = dec.flush() if block is None else dec.push(block)
            y = y[:, :remaining]
            remaining -= y.shape[1]
            writer.write(y)
            bar.update(y.shape[1] / codec.sample_rate)
    _report_over(writer.over)
    print(f"{args.output}: {h.length / codec.sample_rate:.2f} s at {out_rate} Hz")


def cmd_roundtrip(args: argparse.Namespace) -> None:
    codec = _load(args)
    reader = _reader(args, codec)
    meter = QualityMeter(codec.sample_rate)
    t0 = time.perf_counter()
    out_rate = reader.input_rate if args.keep_rate else codec.sample_rate
    with AudioWriter(args.output, codec.sample_rate, codec.channels, out_rate) as writer, \
            _progress(reader.seconds, "roundtrip") as bar:
        stats = _stream_through(codec, _counted(reader.blocks(), bar, codec.sample_rate), writer, meter, largest_window=None)
    seconds = time.perf_counter() - t0
    _report_over(writer.over)
    q = meter.result()
    dur = stats["samples"] / codec.sample_rate

    def db(v: float | None) -> str:
        return "n/a (silent input)" if v is None else f"{v:.2f} dB"

    print(f"{args.output}: {dur:.2f} s; SNR {db(q['snr_db'])}, SI-SDR {db(q['si_sdr_db'])}, "
          f"mel distance {q['mel_distance']:.4f}; {dur / seconds:.1f}x real time (encode + decode)")


def _counted(blocks: Iterable[np.ndarray], bar: tqdm, sample_rate: int) -> Iterator[np.ndarray]:
    for block in blocks:
        yield block
        bar.update(block.shape[1] / sample_rate)


def _stream_through(codec: Codec, pieces: Iterable[np.ndarray], writer: AudioWriter, meter: QualityMeter | None = None,
                    largest_window: int | None = 1) -> dict:
    """Push audio pieces through a stream encoder and decoder (windows up to ``largest_window``
    chunks; 1 is a live app, None is offline), write the output aligned to the input, feed
    ``meter``; return the compute seconds per piece and counts."""
    enc, dec = codec.stream_encoder(largest_window), codec.stream_decoder(largest_window)
    compute: list[float] = []
    pending: list[np.ndarray] = []  # input not yet matched by output: bounded by the codec's latency
    total = emitted = 0  # at the model's rate (the writer may resample)

    def emit(y: np.ndarray) -> None:
        nonlocal emitted
        y = y[:, : total - emitted]  # decoding covers whole frames; the input ends mid-frame
        emitted += y.shape[1]
        if meter is not None:
            ref = np.concatenate(pending, axis=1)
            meter.update(ref[:, : y.shape[1]], y)
            pending[:] = [ref[:, y.shape[1] :]]
        writer.write(y)

    for piece in pieces:
        total += piece.shape[1]
        pending.append(piece)
        t0 = time.perf_counter()
        y = dec.push(enc.push(piece))
        compute.append(time.perf_counter() - t0)
        emit(y)
    emit(np.concatenate([dec.push(enc.flush()), dec.flush()], axis=1))
    return {"blocks": len(compute), "samples": total, "compute": compute,
            "latency_samples": enc.latency_samples + dec.latency_samples}


def _print_stream_report(codec: Codec, stats: dict, block: int) -> None:
    ms = np.array(stats["compute"]) * 1e3
    budget = block / codec.sample_rate * 1e3
    audio_s = stats["samples"] / codec.sample_rate
    print(f"streamed {audio_s:.2f} s in {stats['blocks']} blocks of {block} samples ({budget:.1f} ms each): "
          f"{audio_s / (ms.sum() / 1e3):.1f}x real time on {codec.threads} thread(s)")
    print(f"compute per block: p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
          f"max {ms.max():.1f} ms; {int((ms > budget).sum())} block(s) slower than real time")
    lat = stats["latency_samples"] / codec.sample_rate * 1e3
    print(f"algorithmic latency: {lat / 2:.0f} ms encoder + {lat / 2:.0f} ms decoder = {lat:.0f} ms")


def cmd_stream(args: argparse.Namespace) -> None:
    codec = _load(args)
    reader = _reader(args, codec)
    block = args.block or codec.hop
    if block < 1:
        raise CliError("--block must be at least 1 sample")
    with AudioWriter(args.output, codec.sample_rate, codec.channels) as writer:
        stats = _stream_through(codec, _rechunk(reader.blocks(), block), writer)
    print(f"{args.output}: {stats['samples'] / codec.sample_rate:.2f} s")
    _print_stream_report(codec, stats, block)


def cmd_demo(args: argparse.Namespace) -> None:
    codec = _load(args)
    clip = args.clip or next((p for p in (Path(codec.model_dir) / DEMO_CLIP, DEMO_MODEL_DIR / DEMO_CLIP) if p.is_file()),
                             None)
    if clip is None:
        raise CliError(f"no demo clip found ({DEMO_CLIP} in the model directory or the package); pass --clip FILE")
    heldout = _heldout_report(Path(codec.model_dir) / "quality.json")  # read first: a bad one writes nothing
    reader = AudioReader(clip, codec.sample_rate, codec.channels, downmix=True)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    meter = QualityMeter(codec.sample_rate)
    with AudioWriter(out / "reconstruction.wav", codec.sample_rate, codec.channels) as writer:
        stats = _stream_through(codec, _rechunk(reader.blocks(), codec.hop), writer, meter)
    from .spectrogram import save_comparison

    original = AudioReader(clip, codec.sample_rate, codec.channels, downmix=True).read_all()
    rebuilt = AudioReader(out / "reconstruction.wav", codec.sample_rate, codec.channels).read_all()
    save_comparison(out / "spectrograms.png", original, rebuilt, codec.sample_rate)
    q = meter.result()
    print(f"model: {codec.model_dir} ({codec.manifest.precision}); clip: {clip.name}")
    _print_stream_report(codec, stats, codec.hop)
    print(f"quality vs the clip: SNR {q['snr_db']:.2f} dB, SI-SDR {q['si_sdr_db']:.2f} dB, "
          f"mel distance {q['mel_distance']:.4f}")
    if heldout:
        print(heldout)
    print(f"wrote {out / 'reconstruction.wav'} and {out / 'spectrograms.png'} (input top, reconstruction bottom)")


def _heldout_report(path: Path) -> str:
    """The model's measured quality on held-out music (``same_edge_export.evaluate``), as printable
    lines; empty where the model directory has no report."""
    if not path.is_file():
        return ""
    try:
        report = json.loads(path.read_text())
        lines = [f"quality on {report['heldout_seconds']:.0f} s of held-out music ({path.name}):"]
        lines += [f"  {name:<22} mel distance {r['mel_distance']:.3f}, ViSQOL MOS-LQO {r['visqol_moslqo']:.2f}, "
                  f"SNR {r['snr_db']:.2f} dB" for name, r in report["systems"].items()]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CliError(f"{path}: not a quality report of same_edge_export.evaluate ({type(e).__name__}: {e})") from None
    return "\n".join(lines)


def _rechunk(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    buf = np.zeros((0, 0), np.float32)
    for b in blocks:
        buf = b if buf.size == 0 else np.concatenate([buf, b], axis=1)
        while buf.shape[1] >= size:
            yield buf[:, :size]
            buf = buf[:, size:]
    if buf.size:
        yield buf


def _report_over(over: int) -> None:
    if over:
        print(f"warning: {over} output samples lie beyond +-1 (kept in float WAV, clipped in FLAC)", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> None:
    args.model_dir = _model_dir(args.model_dir)
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
        fidelity_audio = AudioReader(args.fidelity_audio, 44100).read_all()
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
        sp.add_argument("--threads", type=int, default=None, help="CPU threads for LiteRT (default: every available core)")

    def io(sp: argparse.ArgumentParser, downmix: bool = True, keep_rate: bool = True) -> None:
        sp.add_argument("input", type=Path)
        sp.add_argument("output", type=Path)
        if downmix:
            sp.add_argument("--downmix", action="store_true", help="mix more than two channels down")
        if keep_rate:
            sp.add_argument("--keep-rate", action="store_true", help="write at the input's sample rate, not 44.1 kHz")
        model_opts(sp)

    sp = sub.add_parser("encode", help="audio file -> latent file (.npz)")
    io(sp, keep_rate=False)
    sp.set_defaults(func=cmd_encode)
    sp = sub.add_parser("decode", help="latent file (.npz) -> audio file (.wav or .flac)")
    io(sp, downmix=False)
    sp.set_defaults(func=cmd_decode)
    sp = sub.add_parser("roundtrip", help="encode then decode an audio file; print SNR, SI-SDR and mel distance")
    io(sp)
    sp.set_defaults(func=cmd_roundtrip)
    sp = sub.add_parser("stream", help="play a file through the streaming API in real-time-sized blocks; report timing")
    io(sp, keep_rate=False)
    sp.add_argument("--block", type=int, default=None, help="samples per pushed block (default: one hop, 4096)")
    sp.set_defaults(func=cmd_stream)

    sp = sub.add_parser("demo", help="stream the bundled clip through the model; print speed, latency and quality")
    sp.add_argument("--out", type=Path, default=Path("build/demo"), help="where to write the reconstruction and picture")
    sp.add_argument("--clip", type=Path, default=None, help="audio to stream (default: the bundled clip)")
    model_opts(sp)
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("info", help="describe a model directory")
    sp.add_argument("model_dir", type=Path, nargs="?", default=None,
                    help="model directory (default: the bundled demo model)")
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
        print(f"same-edge: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("same-edge: interrupted", file=sys.stderr)
        return 130
    return 0


def run() -> None:
    """The console entry point: ``main``, then an immediate exit. LiteRT's C++ runtime logs at
    INFO level while its static objects are destroyed at normal exit; all output is written and
    flushed by then, so the process leaves without running that teardown."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
