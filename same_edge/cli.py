"""The ``same-edge`` command line: parses arguments, calls the library, prints.

The work lives in ``same_edge.files`` (file to file), ``same_edge.demo`` and ``same_edge.manifest``.
Every ``same_edge.Error`` and ``OSError`` is one line on stderr and exit status 2; termination
signals stop the command like Ctrl-C (no partial output file); anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
from tqdm import tqdm

from . import __version__
from .codec import Codec
from .dataset import FAILURES, FORMATS, UNCAPTIONED, DatasetOptions, encode_dataset
from .dataset.worker import peak_rss_kb
from .demo import run_demo
from .errors import Error, ModelDirError, Terminated
from .files import StreamStats, decode_file, encode_file, roundtrip_file, stream_file
from .graph import MAX_THREADS
from .manifest import MANIFEST_NAME, PRECISIONS, SIDES, read_manifest
from .metrics import Quality
from .models import DEMO_MODEL_DIR
from .spectrogram import PLOT_HINT

DEFAULT_MODEL = DEMO_MODEL_DIR
EXPORT_HINT = "same-edge export needs the export extra: pip install 'same-edge[export]'"
PROGRESS_MIN_SECONDS = 10.0
_RESUME_HINT = {"encode-dataset": "; a re-run finishes the rest"}  # commands whose finished outputs survive a stop


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _model_dir(given: Path | None) -> Path:
    """The model directory named on the command line, else the bundled demo model."""
    if given is not None:
        return given
    if not (DEFAULT_MODEL / MANIFEST_NAME).is_file():
        raise ModelDirError("no model given and no bundled demo model is installed; "
                            "name a directory written by `same-edge export`")
    return DEFAULT_MODEL


def _load(args: argparse.Namespace, sides: tuple[str, ...] = SIDES) -> Codec:
    args.model = _model_dir(args.model)
    return Codec.load(args.model, threads=args.threads, sides=sides)


@contextlib.contextmanager
def _progress(seconds: float, desc: str) -> Iterator[tqdm]:
    with tqdm(total=round(seconds, 1), unit="s", desc=desc, disable=seconds < PROGRESS_MIN_SECONDS, leave=False,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]") as bar:
        yield bar


def _audio_seconds(path: Path) -> float:
    """The length of an audio file, to size a progress bar (0 where unreadable: the reader then
    reports the file properly)."""
    import soundfile as sf

    from .audio import soundfile_name

    try:
        info = sf.info(soundfile_name(path))
        return info.frames / info.samplerate
    except Exception:
        return 0.0


def _latent_seconds(path: Path) -> float:
    """The audio length a latent file decodes to, to size a progress bar (0 where unreadable)."""
    from .latents import LatentReader

    try:
        with LatentReader(path) as r:
            return r.header.length / r.header.sample_rate
    except Error:
        return 0.0


def _db(v: float | None) -> str:
    return "n/a (silent input)" if v is None else f"{v:.2f} dB"


def _quality_line(q: Quality) -> str:
    return f"SNR {_db(q.snr_db)}, SI-SDR {_db(q.si_sdr_db)}, mel distance {q.mel_distance:.4f}"


def _warn_beyond_full_scale(count: int) -> None:
    if count:
        print(f"warning: {count} output samples lie beyond +-1 (kept in float WAV, clipped in FLAC)", file=sys.stderr)


def cmd_encode(args: argparse.Namespace) -> None:
    codec = _load(args, sides=("encoder",))
    with _progress(_audio_seconds(args.input), "encode") as bar:
        s = encode_file(codec, args.input, args.output, downmix=args.downmix, progress=bar.update)
    print(f"{s.output}: {s.frames} frames x {codec.latent_dim} dims from {s.audio_seconds:.2f} s of audio")


def cmd_decode(args: argparse.Namespace) -> None:
    codec = _load(args, sides=("decoder",))
    with _progress(_latent_seconds(args.input), "decode") as bar:
        s = decode_file(codec, args.input, args.output, keep_rate=args.keep_rate, progress=bar.update)
    _warn_beyond_full_scale(s.beyond_full_scale)
    print(f"{s.output}: {s.audio_seconds:.2f} s at {s.output_rate} Hz")


def cmd_roundtrip(args: argparse.Namespace) -> None:
    codec = _load(args)
    with _progress(_audio_seconds(args.input), "roundtrip") as bar:
        s = roundtrip_file(codec, args.input, args.output, keep_rate=args.keep_rate, downmix=args.downmix,
                           progress=bar.update)
    _warn_beyond_full_scale(s.beyond_full_scale)
    print(f"{s.output}: {s.audio_seconds:.2f} s; {_quality_line(s.quality)}; "
          f"{s.realtime_factor:.1f}x real time (encode + decode)")


def _print_stream_report(codec: Codec, s: StreamStats) -> None:
    ms = np.array(s.compute) * 1e3
    block = s.block or codec.hop
    budget = block / codec.sample_rate * 1e3
    print(f"streamed {s.audio_seconds:.2f} s in {len(ms)} blocks of {block} samples ({budget:.1f} ms each): "
          f"{s.realtime_factor:.1f}x real time on {codec.threads} thread(s)")
    print(f"compute per block: p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
          f"max {ms.max():.1f} ms; {int((ms > budget).sum())} block(s) slower than real time")
    enc, dec = (v / codec.sample_rate * 1e3 for v in (codec.encoder_latency_samples, codec.decoder_latency_samples))
    print(f"algorithmic latency: {enc:.0f} ms encoder + {dec:.0f} ms decoder = {enc + dec:.0f} ms")


def cmd_stream(args: argparse.Namespace) -> None:
    codec = _load(args)
    s = stream_file(codec, args.input, args.output, block=args.block, downmix=args.downmix)
    _warn_beyond_full_scale(s.beyond_full_scale)
    print(f"{args.output}: {s.audio_seconds:.2f} s")
    _print_stream_report(codec, s)


def cmd_demo(args: argparse.Namespace) -> None:
    codec = _load(args)
    r = run_demo(codec, args.out, args.clip)
    print(f"model: {codec.model_dir} ({codec.manifest.precision}); clip: {r.clip.name}")
    _print_stream_report(codec, r.stream)
    if r.stream.quality is not None:
        print(f"quality vs the clip: {_quality_line(r.stream.quality)}")
    if r.heldout is not None:
        print(f"quality on {r.heldout.seconds:.0f} s of held-out music (quality.json):")
        for name, q in r.heldout.systems.items():
            print(f"  {name:<22} mel distance {q.mel_distance:.3f}, ViSQOL MOS-LQO {q.visqol_moslqo:.2f}, "
                  f"SNR {q.snr_db:.2f} dB")
    if r.picture is None:
        print(f"wrote {r.reconstruction} ({PLOT_HINT})")
    else:
        print(f"wrote {r.reconstruction} and {r.picture} (input top, reconstruction bottom)")


def cmd_info(args: argparse.Namespace) -> None:
    model_dir = _model_dir(args.model_dir)
    m = read_manifest(model_dir)
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
        return
    print(f"model      {model_dir} ({m.precision}: {m.precision_description})")
    spec = m.model
    print(f"audio      {spec.sample_rate} Hz, {spec.channels} channels; hop {spec.hop} samples -> "
          f"{spec.latent_dim}-dim latents at {spec.sample_rate / spec.hop:.2f} Hz")
    if spec.sliding:
        print(f"attention  sliding window, {spec.window_frames} frame(s) either side (SAME-L); "
              f"windows of {', '.join(str(w) for w in m.windows)} frames")
    else:
        print(f"attention  chunked, midpoint shift (SAME-S); windows of {', '.join(str(w) for w in m.windows)} "
              f"chunks of {spec.chunk_samples} samples")
    for side in SIDES:
        g = m.graph(side)
        layers = m.model.config.get(side, {})
        shape = f"width {layers.get('width', '?')}, {layers.get('depth', '?')} blocks" if isinstance(layers, dict) else ""
        ops = g.ops.get("ops", {}) if isinstance(g.ops.get("ops"), dict) else {}
        print(f"{side:<10} {g.file} ({g.bytes / 1e6:.1f} MB; {shape}), state {list(g.state_shape)}, "
              f"signatures {', '.join(g.signatures)}")
        if ops:
            print(f"{'':<10} {sum(ops.values())} ops, {ops.get('FULLY_CONNECTED', 0)} fully connected"
                  + (f"; XNNPACK partitions {g.delegation.get('partitions')}" if g.delegation.get("partitions") else ""))
    print(f"latency    encoder {m.encoder_latency_samples} + decoder {m.decoder_latency_samples} samples "
          f"({(m.encoder_latency_samples + m.decoder_latency_samples) / spec.sample_rate * 1e3:.0f} ms)")
    print(f"weights    {m.source.config_file} {m.source.config_sha256[:12]}, "
          f"{m.source.checkpoint_file} {m.source.checkpoint_sha256[:12]} (model id {m.model_id})")
    print(f"tools      {', '.join(f'{k} {v}' for k, v in m.tools.items())}")


def _precision_list(text: str) -> list[str]:
    """``--precision``: one precision, several comma-separated, or ``all``."""
    names = list(PRECISIONS) if text.strip() == "all" else [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown precision {', '.join(unknown) or repr(text)}; "
                                         f"choose from {', '.join(PRECISIONS)} (comma-separated) or all")
    return list(dict.fromkeys(names))


def cmd_export(args: argparse.Namespace) -> None:
    try:
        from same_edge_export.cache import default_cache_dir
        from same_edge_export.convert import FIDELITY_NAME, export_precisions, model_dirs
        from same_edge_export.phases import PhaseTimer
    except ImportError as e:
        raise ModelDirError(f"{EXPORT_HINT} ({e})") from None
    timer = PhaseTimer()
    cache_dir = None if args.no_cache else args.cache_dir or default_cache_dir()
    try:
        manifests = export_precisions(args.config, args.checkpoint, args.out, args.precision, args.windows,
                                      fidelity_audio_path=args.fidelity_audio, progress=not args.quiet,
                                      cache_dir=cache_dir, timer=timer)
    finally:  # a failed export's table shows where it stopped
        if args.verbose:
            print(timer.table(), file=sys.stderr)
            print(f"peak RSS {peak_rss_kb() / 1e6:.2f} GB", file=sys.stderr)
    dirs = model_dirs(args.out, args.precision)
    for precision, m in manifests.items():
        fidelity = json.loads((dirs[precision] / FIDELITY_NAME).read_text())
        print(f"{dirs[precision]}: {m.precision}, encoder {m.encoder.bytes / 1e6:.1f} MB, "
              f"decoder {m.decoder.bytes / 1e6:.1f} MB; SNR vs PyTorch fp32: encoder "
              f"{fidelity['encoder']['snr_db']:.1f} dB, decoder {fidelity['decoder']['snr_db']:.1f} dB")


def cmd_encode_dataset(args: argparse.Namespace) -> int:
    s = encode_dataset(args.input, args.output, DatasetOptions(model=args.model, workers=args.workers, threads=args.threads,
                       format=args.format, sample_size=args.sample_size, pad=args.pad, uncaptioned=args.uncaptioned,
                       downmix=args.downmix, verify=args.verify, overwrite=args.overwrite, ray=args.ray,
                       progress=not args.quiet))
    print(f"{s.output}: {s.encoded} encoded, {s.skipped} up to date, {s.failed} failed"
          + (f", {s.uncaptioned} without caption skipped" if s.format == "sa3" else "")
          + f" of {s.files} files; {s.audio_seconds / 3600:.2f} h of audio in {s.wall_seconds:.1f} s "
          f"({s.x_real_time:.1f}x real time, {s.workers} {s.mode} worker(s) x {s.threads} thread(s))")
    if s.failed:
        print(f"{s.failed} file(s) failed: see {Path(s.output) / FAILURES}", file=sys.stderr)
    return 0 if s.failed == 0 else 1


def _positive(kind: str, high: int | None = None) -> object:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be an integer, got {text!r}") from None
        if value < 1 or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{kind} must be from 1 to {high}" if high else f"{kind} must be at least 1")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) like every other error."""

    def error(self, message: str) -> NoReturn:
        _error(f"error: {message} (see {self.prog} --help)")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="same-edge", description="Run the SAME music autoencoder on CPUs through LiteRT.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def model_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", type=Path, default=None, help="model directory (default: the bundled demo model)")
        sp.add_argument("--threads", type=_positive("--threads", MAX_THREADS), default=None,
                        help="CPU threads for LiteRT (default: every available core)")

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
    sp.add_argument("--block", type=_positive("--block"), default=None,
                    help="samples per pushed block (default: one hop, 4096)")
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
    sp.add_argument("--precision", type=_precision_list, default="fp32", metavar="P[,P...]|all",
                    help=f"{', '.join(PRECISIONS)}; several comma-separated, or all: converted once, each "
                         "quantised from the same fp32 graphs into OUT/<precision> (default fp32)")
    sp.add_argument("--out", type=Path, required=True,
                    help="model directory; with several precisions, the parent of one per precision")
    sp.add_argument("--windows", type=_positive("--windows"), nargs="+", default=[1, 4, 16],
                    help="window sizes in chunks: SAME-S's attention chunks of 2 frames, SAME-L's frames "
                         "(must include 1; default 1 4 16)")
    sp.add_argument("--fidelity-audio", type=Path, default=None,
                    help="music file to measure fidelity on (default: built-in synthetic music)")
    sp.add_argument("--cache-dir", type=Path, default=None,
                    help="cache of fp32 conversions, reused while config, checkpoint, windows and tools are "
                         "unchanged (default: $XDG_CACHE_HOME/same-edge/conversions or ~/.cache/same-edge/conversions)")
    sp.add_argument("--no-cache", action="store_true", help="convert afresh and store nothing")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--verbose", action="store_true",
                    help="print the time of each phase (per side and window) and the peak RSS on stderr at the end")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser(
        "encode-dataset", help="encode every audio file under a directory (or in a list file): parallel, resumable, "
                               "locally or on a Ray cluster",
        description="Encode a whole audio library to latents, mirroring IN's tree in OUT. Re-running finishes "
                    "an interrupted job and skips what is up to date. Exit status: 0 all done, 1 some files "
                    "failed (see OUT/failures.jsonl), 2 bad invocation or a full disk, 130 Ctrl-C, 143 SIGTERM.")
    sp.add_argument("input", type=Path, help="directory of audio files (walked recursively) or a text file listing them")
    sp.add_argument("output", type=Path, help="output directory")
    sp.add_argument("--model", type=Path, default=None, help="model directory (default: the bundled demo model)")
    sp.add_argument("--workers", type=_positive("--workers", 4096), default=None,
                    help="worker processes or Ray actors, each with its own encoder (default: fill the machine or cluster)")
    sp.add_argument("--threads", type=_positive("--threads", MAX_THREADS), default=None,
                    help="LiteRT threads per worker (default: 1; all cores / --workers)")
    sp.add_argument("--format", choices=FORMATS, default="same-edge",
                    help="same-edge: .npz latent files; sa3: Stable Audio 3's pre-encoded .npy/.json layout")
    sp.add_argument("--sample-size", type=_positive("--sample-size"), default=None,
                    help="sa3: crop each file to its first N samples at the model's rate (like SA3's --sample_size; "
                         "at most 10 minutes)")
    sp.add_argument("--pad", action="store_true", help="sa3: also pad shorter files with digital silence to --sample-size")
    sp.add_argument("--uncaptioned", choices=UNCAPTIONED, default="skip",
                    help="sa3: files without a caption .txt, or with a blank one, are skipped (default: SA3 encodes "
                         "none of theirs) or get an empty prompt")
    sp.add_argument("--downmix", action="store_true", help="mix files with more than two channels down (else they fail)")
    sp.add_argument("--verify", action="store_true", help="judge what is up to date by content hash, not size and mtime")
    sp.add_argument("--overwrite", action="store_true", help="start OUT afresh, even over another model's outputs")
    sp.add_argument("--ray", metavar="auto|local|ADDRESS", default=None,
                    help="run on a Ray cluster (needs the cluster extra): auto = the running cluster, "
                         "local = a private one-machine instance, or the head's address")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_encode_dataset)
    return p


def _error(message: str) -> None:
    if sys.stderr is None:  # started with fd 2 closed: print() would fall back to stdout
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"same-edge: {message}", file=sys.stderr)


def _hold_standard_descriptors() -> None:
    """Point a closed fd 0, 1 or 2 at /dev/null: otherwise the next file opened (an output, a
    model) takes its number, and whatever writes to that descriptor (a print, LiteRT's log)
    writes into the file."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0, 2 for bad input, 130/143/129 when stopped)."""
    _hold_standard_descriptors()
    for stream in (sys.stdout, sys.stderr):  # file names are bytes: print a non-UTF-8 one as it is
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="surrogateescape")
    args = build_parser().parse_args(argv)
    previous = {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)} \
        if hasattr(signal, "SIGHUP") and _main_thread() else {}
    try:
        code = args.func(args) or 0
        if sys.stdout is not None:
            sys.stdout.flush()
    except (Error, OSError) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        _error(f"error: {text}")
        return 2
    except KeyboardInterrupt:
        _error(f"interrupted{_RESUME_HINT.get(args.command, '')}")
        return 130
    except Terminated as e:
        _error(f"stopped by {e}{_RESUME_HINT.get(args.command, '')}")
        return 128 + e.signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run() -> None:
    """The console entry point: ``main``, then an immediate exit. LiteRT's C++ runtime logs at
    INFO level while its static objects are destroyed at normal exit; all output is written and
    flushed by then, so the process leaves without running that teardown."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
