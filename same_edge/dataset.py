"""Encode whole audio libraries to latents: ``same-edge encode-dataset IN OUT``.

One coordinator (this process) walks IN, decides what is already done, hands one file at a time
to each worker and writes every record; the workers (local processes, or Ray actors with
``ray=...``, see ``dataset_ray.py``) each hold one encoder and write their outputs straight into
OUT, atomically. So memory stays flat (a worker holds one audio block and one encoder; the
coordinator holds a bounded window of work and the index of what is done), and every decision
about resume, failures and progress is made in one place, identically in both modes.

Layout of OUT (mirrors IN's tree; the source's suffix is kept, so ``a.flac`` and ``a.wav`` never
collide):

- ``--format same-edge``: ``rel/song.flac.npz`` (``same_edge.latents`` files: latents, length, model id).
- ``--format sa3``: ``rel/song.flac.npy`` (``[latent_dim, L]`` float32) and ``rel/song.flac.json``
  (``padding_mask``, ``seconds_start``, ``seconds_total``, ``path``, ``prompt``...), ``silence.npy``
  (``[1, latent_dim, N]``: the latents of digital silence) and ``filelist.txt``: what Stable Audio
  3's ``scripts/pre_encode_dataset.py`` writes for each clip, by its rules, and its
  ``PreEncodedDataset`` reads.
- ``failures.jsonl`` (this run's failed files, with the reason), ``summary.json``;
  ``.same-edge-dataset.json`` (the job's identity: model, precision, format, options) and
  ``.same-edge-index.jsonl`` (one line per finished output: its source's size, mtime and sha256),
  hidden so that loaders scanning OUT skip them.

Every file is written under a temporary name ``.same-edge-tmp.<run tag>.<random>`` beside it and
renamed into place. Each run's tag is recorded in ``.same-edge-running`` until the run ends, so the
temporary files of killed writers are swept by exactly that name: never a file of anyone else's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import secrets
import signal
import stat
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .atomic import AtomicPath, atomic_output
from .errors import Error, Terminated

FORMATS = ("same-edge", "sa3")
UNCAPTIONED = ("skip", "empty")
MARKER = ".same-edge-dataset.json"
INDEX = ".same-edge-index.jsonl"
LOCK = ".same-edge-lock"
RUNNING = ".same-edge-running"
FAILURES = "failures.jsonl"
SUMMARY = "summary.json"
FILELIST = "filelist.txt"
SILENCE = "silence.npy"
MARKER_VERSION = 1
SA3_LAYOUT = 2  # in an sa3 job's identity: 1 wrote SA3's frames, last frames and unclamped audio otherwise
SA3_DEFAULT_SAMPLE_SIZE = 12582912  # scripts/pre_encode_dataset.py's default --sample_size (3072 SAME frames)
MAX_SAMPLE_SECONDS = 600  # --sample-size beyond this (twice SA3's longest window) is a typo, not a crop
TEMP_PREFIX = ".same-edge-tmp."  # + the run's tag + "." + random characters: this program's temporary files
TAG_PATTERN = re.compile(r"[0-9a-f]{16}")
MAX_ATTEMPTS = 2  # a file whose worker dies this many times is recorded as a failure
PREFETCH = 2  # tasks handed to a worker at a time: the one it runs and the next
STARTUP_TIMEOUT_S = 600.0  # no worker ready for this long: the pool cannot start (e.g. Ray has no free CPUs)
HASH_BLOCK = 1 << 20
PAD_BLOCK_FRAMES = 64  # digital silence is pushed this many frames at a time (memory stays flat)
# errno values that no other file would escape: stop the run rather than fail every file after it.
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# Test-only fault injection, read by workers (local processes and Ray actors inherit it): JSON
# {"crash_on": name, "crash_once_on": name, "once_dir": dir, "enospc_on": name, "slow_s": seconds,
# "barrier_nodes": n (with once_dir: wait until workers on n nodes have started)}.
FAULTS_ENV = "SAME_EDGE_DATASET_TEST_FAULTS"

# libsndfile's major formats and the file extensions they go by; RAW (headerless) and MAT4/MAT5
# (.mat is nearly always a Matlab data file, not audio) are left out.
_FORMAT_EXTENSIONS = {
    "WAV": ("wav", "wave"), "WAVEX": ("wav",), "RF64": ("rf64",), "W64": ("w64",), "AIFF": ("aif", "aiff", "aifc"),
    "AU": ("au", "snd"), "FLAC": ("flac",), "OGG": ("ogg", "oga", "opus"), "MP3": ("mp3",), "CAF": ("caf",),
    "IRCAM": ("sf", "ircam"), "NIST": ("nist", "sph"), "VOC": ("voc",), "SVX": ("iff", "svx"), "PAF": ("paf",),
    "PVF": ("pvf",), "XI": ("xi",), "HTK": ("htk",), "SDS": ("sds",), "AVR": ("avr",), "SD2": ("sd2",),
    "MPC2K": ("mpc",), "WVE": ("wve",),
}


class DatasetError(Error, ValueError):
    """A dataset job cannot start or go on: bad IN or OUT, another job's outputs, a full disk."""


def audio_extensions() -> frozenset[str]:
    """Lower-case extensions (no dot) of every format the installed libsndfile reads."""
    import soundfile

    available = soundfile.available_formats()
    return frozenset(ext for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in available for ext in exts)


@dataclass(frozen=True)
class DatasetSummary:
    """What one ``encode_dataset`` run did (also written to ``OUT/summary.json``).

    Counts are files; ``audio_seconds`` is the audio encoded by this run (skipped files excluded),
    ``x_real_time`` that audio over the wall time. ``peak_rss_mb``: the largest peak resident
    memory of any worker (MB).
    """

    input: str
    output: str
    format: str
    mode: str  # "local" or "ray"
    model_dir: str
    model_id: str
    precision: str
    workers: int
    threads: int  # per worker
    nodes: int  # machines the workers ran on (1 in local mode)
    files: int  # audio files found in IN
    encoded: int  # written by this run
    skipped: int  # already up to date in OUT
    uncaptioned: int  # sa3 with uncaptioned="skip": no caption .txt, not encoded
    failed: int  # recorded in failures.jsonl
    audio_seconds: float
    wall_seconds: float
    x_real_time: float
    peak_rss_mb: float
    worker_restarts: int
    interrupted: bool
    started: str  # ISO 8601, UTC
    finished: str

    @property
    def ok(self) -> bool:
        """True when every file is encoded (or was already) and the run was not interrupted."""
        return self.failed == 0 and not self.interrupted


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to encode a file the way this run does (picklable)."""

    model_dir: str
    in_root: str
    out_root: str
    format: str
    sample_size: int | None
    pad: bool
    downmix: bool
    uncaptioned: str
    model_id: str
    precision: str
    temp_tag: str = field(default_factory=lambda: secrets.token_hex(8))  # names this run's temporary files

    def identity(self) -> dict[str, Any]:
        """What two runs must share to write into the same OUT."""
        identity = {"tool": "same-edge encode-dataset", "version": MARKER_VERSION, "format": self.format,
                    "model_id": self.model_id, "precision": self.precision, "sample_size": self.sample_size,
                    "pad": self.pad, "downmix": self.downmix,
                    "uncaptioned": self.uncaptioned if self.format == "sa3" else None}
        if self.format == "sa3":
            identity["sa3_layout"] = SA3_LAYOUT
        return identity


@dataclass
class Task:
    """One unit of work: an audio file (``kind`` "file") or the silence latent (``kind`` "silence")."""

    kind: str
    out: str  # output path relative to OUT (the .npz, or the .npy for sa3)
    src: str = ""  # source path relative to IN's root
    path: str = ""  # absolute source path
    caption: list[int] | None = None  # sa3: the caption .txt's [size, mtime_ns], or None
    prompt: str | None = None  # sa3: the stripped caption ("" with uncaptioned="empty")
    expect_sha256: str | None = None  # --verify: skip if the source still hashes to this
    size: int = 0  # source bytes, for progress
    attempts: int = 0


# ---------------------------------------------------------------------------------------------
# Worker side: one encoder, one file at a time.


def _peak_rss_kb() -> int:
    """This process's peak resident memory in kB (0 where the platform does not say). Linux's
    VmHWM, not ru_maxrss: a spawned process's ru_maxrss starts at its parent's RSS at fork time."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS counts bytes


def _lock(path: Path) -> Any:
    """An exclusive lock on ``path`` for this run, or None if another process holds it (POSIX
    ``flock``; no lock where the platform has none)."""
    f = open(path, "a")  # noqa: SIM115 (held for the run; closing releases it)
    try:
        import fcntl
    except ImportError:  # Windows
        return f
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _faults() -> dict[str, Any]:
    raw = os.environ.get(FAULTS_ENV)
    return json.loads(raw) if raw else {}


def _file_fingerprint(path: str) -> tuple[int, int, str]:
    """(size, mtime_ns, sha256 hex) of a file; the stat comes first, so a file changed while it is
    hashed or encoded looks changed to the next run."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_BLOCK):
            h.update(chunk)
    return st.st_size, st.st_mtime_ns, h.hexdigest()


def _own_prefix(tag: str) -> str:
    """The temporaries of the run tagged ``tag`` (recorded in ``RUNNING``) are named
    ``.same-edge-tmp.<tag>.<random><suffix>``: the sweep after a killed run removes exactly such
    names, so a file is removed only if this program made it."""
    return f"{TEMP_PREFIX}{tag}."


class _NpyFramesWriter:
    """Write a float32 ``.npy`` of shape ``(*lead, frames)`` a block of frames at a time, atomically.

    The array is stored frame-major (``fortran_order``: each frame's values contiguous), so blocks
    append; the header, written first with 0 frames, is rewritten with the count at close (npy
    pads headers to 64 bytes, so its length does not change).
    """

    def __init__(self, path: Path, lead: tuple[int, ...], tag: str) -> None:
        self.path, self.lead, self.frames = path, lead, 0
        self._out = AtomicPath(path, _own_prefix(tag))
        self._file = open(self._out.path, "wb")  # noqa: SIM115 (closed in close/abort)
        self._header_len = self._write_header()

    def _write_header(self) -> int:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": True, "shape": (*self.lead, self.frames)})
        self._file.seek(0)
        self._file.write(buf.getvalue())
        self._file.seek(0, os.SEEK_END)
        return len(buf.getvalue())

    def write(self, z: np.ndarray) -> None:
        """Append ``[latent_dim, k]`` float32 frames."""
        self._file.write(np.ascontiguousarray(z.T, dtype="<f4").tobytes())
        self.frames += z.shape[1]

    def close(self) -> None:
        """Finish the header and move the file into place."""
        try:
            if self._write_header() != self._header_len:
                raise RuntimeError("npy header changed length")
            self._file.close()
        except BaseException:
            self.abort()
            raise
        self._out.commit()

    def abort(self) -> None:
        """Discard the file: nothing appears at ``path``."""
        self._file.close()
        self._out.discard()


def _write_json(path: Path, obj: dict[str, Any], tag: str) -> None:
    with atomic_output(path, _own_prefix(tag)) as tmp:
        tmp.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")), encoding="utf-8")


def sa3_frames(samples: int, chunk: int, hop: int) -> int:
    """The latent frames SA3's encoder returns for ``samples`` of audio: it zero-pads to whole attention
    chunks and keeps every frame (``ceil(samples / hop)`` rounded up to whole chunks: 50 for 49)."""
    return -(-samples // chunk) * (chunk // hop)


def padding_mask(valid: int, encoded: int, frames: int) -> list[int]:
    """SA3's padding mask at latent rate: its sample mask (1 for the ``valid`` samples of audio, 0 for
    padding, ``encoded`` in all) resized to ``frames`` by nearest-neighbour interpolation
    (``torch.nn.functional.interpolate(mode="nearest")``: frame i takes sample ``i * encoded // frames``)."""
    return [1 if i * encoded // frames < valid else 0 for i in range(frames)]


class Encoder:
    """A worker's state: one ``Codec`` (encoder side) and the job; ``run(task)`` encodes one task and
    returns its result record. Used by local worker processes and by Ray actors alike."""

    def __init__(self, job: Job, threads: int) -> None:
        from .codec import Codec

        self.job = job
        self.codec = Codec.load(job.model_dir, threads=threads, sides=("encoder",))
        self.out_root = Path(job.out_root)

    def run(self, task: Task) -> dict[str, Any]:
        """Encode one task. Never raises for a bad file: the result's ``status`` is "ok", "uptodate"
        (``--verify`` found the source unchanged), "failed" (with ``reason``) or "fatal" (the output
        side cannot take more: a full disk; the coordinator stops the run)."""
        t0 = time.perf_counter()
        result: dict[str, Any] = {"kind": task.kind, "out": task.out, "src": task.src}
        try:
            self._fault(task)
            if task.kind == "silence":
                result.update(self._silence(task))
            else:
                size, mtime_ns, sha = _file_fingerprint(task.path)
                result.update(size=size, mtime_ns=mtime_ns, sha256=sha)
                if task.expect_sha256 is not None and sha == task.expect_sha256:
                    result["status"] = "uptodate"
                    return result
                result.update(self._sa3(task) if self.job.format == "sa3" else self._same_edge(task))
            result["status"] = "ok"
        except OSError as e:
            fatal = e.errno in FATAL_ERRNOS
            result.update(status="fatal" if fatal else "failed", reason=f"{type(e).__name__}: {e}")
        except Exception as e:  # a bad file or a bug: recorded, never stops the run
            result.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": "))
        finally:
            result["compute_s"] = time.perf_counter() - t0
            result["rss_kb"] = _peak_rss_kb()
            result["pid"] = os.getpid()
        return result

    def _fault(self, task: Task) -> None:
        faults = _faults()
        if not faults:
            return
        name = Path(task.src).name
        if faults.get("barrier_nodes") and not getattr(self, "_barrier_passed", False):
            # Start work only once actors on this many nodes (Ray: distinct raylets) have a task.
            marks = Path(faults["once_dir"])
            (marks / f"node-{os.environ.get('RAY_RAYLET_PID', 'local')}-{os.getpid()}").touch()
            end = time.monotonic() + 120
            while len({m.name.split("-")[1] for m in marks.glob("node-*")}) < faults["barrier_nodes"]:
                if time.monotonic() > end:
                    raise RuntimeError("test barrier: the other nodes never started")
                time.sleep(0.05)
            self._barrier_passed = True
        if faults.get("slow_s"):
            time.sleep(float(faults["slow_s"]))
        if faults.get("crash_on") == name:
            os.kill(os.getpid(), signal.SIGKILL)
        if faults.get("crash_once_on") == name:
            flag = Path(faults["once_dir"]) / f"crashed-{name}"
            if not flag.exists():
                flag.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        if faults.get("enospc_on") == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.out_root / task.out))

    def _reader(self, task: Task):  # noqa: ANN202 (AudioReader)
        from .audio import AudioReader

        c = self.codec
        return AudioReader(task.path, c.sample_rate, c.channels, self.job.downmix)

    def _same_edge(self, task: Task) -> dict[str, Any]:
        from .files import encode_file

        out = self.out_root / task.out
        # The latent file's writer names its own temporary file after its target: ours, so it is ours too.
        tmp = AtomicPath(out, _own_prefix(self.job.temp_tag))
        try:
            stats = encode_file(self.codec, task.path, tmp.path, downmix=self.job.downmix)
        except BaseException:
            tmp.discard()
            raise
        tmp.commit()
        return {"seconds": stats.samples / self.codec.sample_rate, "frames": stats.frames, "out_bytes": out.stat().st_size}

    def _push_silence(self, enc, put, samples: int) -> None:  # noqa: ANN001 (StreamEncoder, frames -> None)
        c, block = self.codec, PAD_BLOCK_FRAMES * self.codec.hop
        zeros = np.zeros((c.channels, min(block, max(samples, 0))), np.float32)
        while samples > 0:
            n = min(block, samples)
            put(enc.push(zeros[:, :n]))
            samples -= n

    def _sa3(self, task: Task) -> dict[str, Any]:
        """One clip as SA3's pre_encode_dataset.py writes it (crop offset 0, no phase flip): the window
        (``sample_size``; without one, SA3's default, or the whole file when longer) cut from the
        audio, clamped to +-1 and padded with digital silence to the frames SA3's encoder returns for
        it; without ``pad`` the frames after the last valid one are dropped, after they have been
        encoded: a clip's last frames are those of SA3, computed with the silence after them."""
        c, job = self.codec, self.job
        hop, chunk = c.hop, c.manifest.model.chunk_samples
        reader = self._reader(task)
        length = -(-reader.frames * c.sample_rate // reader.input_rate)  # SA3's resampler keeps ceil(n * new / old)
        window = job.sample_size or max(SA3_DEFAULT_SAMPLE_SIZE, length)
        frames = sa3_frames(window, chunk, hop)
        mask = padding_mask(min(length, window), window, frames)
        keep = frames if job.pad else sum(mask)  # the mask is ones, then zeros
        out = self.out_root / task.out
        w = _NpyFramesWriter(out, (c.latent_dim,), job.temp_tag)
        enc = c.stream_encoder(largest_window=None)

        def put(z: np.ndarray) -> None:
            w.write(z[:, : keep - w.frames])

        try:
            taken = 0
            blocks = reader.blocks()
            with contextlib.closing(blocks):  # a crop stops reading early; closing releases the file
                for block in blocks:
                    block = np.clip(block[:, : window - taken], -1.0, 1.0)  # SA3 clamps before encoding
                    taken += block.shape[1]
                    put(enc.push(block))
                    if taken >= window:
                        break
            # Silence up to the window's whole chunks; once the input reaches the encoder's latency past
            # the last kept frame, every kept frame is final, and the rest would only be dropped.
            end = frames * hop
            pushed = min(end, max(taken, keep * hop + c.encoder_latency_samples))
            self._push_silence(enc, put, pushed - taken)
            while w.frames < keep and pushed < end:  # (not if the manifest's latency holds)
                self._push_silence(enc, put, min(chunk, end - pushed))
                pushed = min(end, pushed + chunk)
            if w.frames < keep:
                put(enc.flush())
            if w.frames != keep:
                raise RuntimeError(f"encoded {w.frames} frames, not {keep}")
        except BaseException:
            w.abort()
            raise
        upper = max(0, length - window)
        meta = {
            "path": task.path,
            "relpath": task.src,
            "timestamps": [0.0, window / (upper + window)],  # SA3's normalised crop window (offset 0)
            "seconds_start": 0,
            "seconds_total": -(-length // c.sample_rate),
            "padding_mask": mask[:keep],
            "sample_rate": c.sample_rate,
            "model_id": c.manifest.model_id,
            "precision": c.manifest.precision,
        }
        if task.prompt is not None:
            meta["prompt"] = task.prompt
        # The .json first, the .npy last: SA3's loader finds samples by their .npy, so a sample is
        # never seen without its metadata.
        _write_json(out.with_suffix(".json"), meta, job.temp_tag)
        w.close()
        return {"seconds": taken / c.sample_rate, "frames": keep, "out_bytes": out.stat().st_size}

    def _silence(self, task: Task) -> dict[str, Any]:
        c = self.codec
        samples = self.job.sample_size or SA3_DEFAULT_SAMPLE_SIZE
        enc = c.stream_encoder(largest_window=None)
        out = self.out_root / task.out
        w = _NpyFramesWriter(out, (1, c.latent_dim), self.job.temp_tag)  # SA3 saves a batch of one, squeezed on load
        try:
            self._push_silence(enc, w.write, sa3_frames(samples, c.manifest.model.chunk_samples, c.hop) * c.hop)
            w.write(enc.flush())
        except BaseException:
            w.abort()
            raise
        w.close()
        return {"seconds": 0.0, "frames": w.frames, "out_bytes": out.stat().st_size, "size": samples}


def _worker_main(conn: multiprocessing.connection.Connection, job: Job, threads: int) -> None:
    """A local worker process: load the encoder, then answer tasks until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the coordinator decides
    try:
        encoder = Encoder(job, threads)
    except Exception as e:
        conn.send(("fatal", f"a worker cannot load the model: {type(e).__name__}: {e}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the coordinator is gone
            break
        if task is None:
            break
        try:
            conn.send(("result", encoder.run(task)))
        except OSError:  # the coordinator is gone (its output, if written, is redone by the next run)
            break
    # Leave without LiteRT's static teardown, which logs at INFO level (as the command line does).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# Pools: slots that each run one task at a time. Events: ("ready", slot, info),
# ("result", slot, result), ("died", slot, reason), ("fatal", slot, message).


class LocalPool:
    """``workers`` spawned processes, each with one ``Encoder`` of ``threads`` threads."""

    mode = "local"

    def __init__(self, job: Job, workers: int, threads: int) -> None:
        self.job, self.size, self.threads = job, workers, threads
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = [None] * workers
        self._conns: list[Any] = [None] * workers

    def start(self, slot: int) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child, self.job, self.threads), daemon=True,
                                 name=f"same-edge-worker-{slot}")
        proc.start()
        child.close()
        self._procs[slot], self._conns[slot] = proc, parent

    def submit(self, slot: int, task: Task) -> None:
        with contextlib.suppress(OSError):  # a dead worker: its sentinel reports it
            self._conns[slot].send(task)

    def poll(self, timeout: float) -> list[tuple[str, int, Any]]:
        live = {c: i for i, c in enumerate(self._conns) if c is not None}
        sentinels = {p.sentinel: i for i, p in enumerate(self._procs) if p is not None}
        ready = multiprocessing.connection.wait([*live, *sentinels], timeout)
        events: list[tuple[str, int, Any]] = []
        dead: set[int] = set()
        for obj in ready:
            if obj in live:
                slot = live[obj]
                try:
                    while obj.poll():
                        kind, payload = obj.recv()
                        events.append((kind, slot, payload))
                except (EOFError, OSError):
                    dead.add(slot)
            else:
                dead.add(sentinels[obj])
        for slot in sorted(dead):
            proc = self._procs[slot]
            proc.join(5)
            code = proc.exitcode
            reason = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                      else f"exit status {code}")
            self._conns[slot].close()
            self._procs[slot] = self._conns[slot] = None
            events.append(("died", slot, f"the worker process died ({reason})"))
        return events

    def nodes(self) -> int:
        return 1

    def close(self, now: bool = False) -> None:
        """Stop every worker: ask them to finish (``now``: kill them; their temporary files are swept)."""
        for slot, proc in enumerate(self._procs):
            if proc is None:
                continue
            if now:
                proc.kill()
            else:
                with contextlib.suppress(OSError):
                    self._conns[slot].send(None)
        for slot, proc in enumerate(self._procs):
            if proc is not None:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
                self._conns[slot].close()
                self._procs[slot] = self._conns[slot] = None


# ---------------------------------------------------------------------------------------------
# The coordinator.


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _os_reason(e: OSError) -> str:
    return f"{type(e).__name__}: {e.strerror or e}"


def _walk(root: Path, extensions: frozenset[str]) -> Iterator[tuple[Path, str | None]]:
    """Audio files under ``root`` in a stable (sorted) order, lazily, as ``(path, None)``; what cannot
    be walked as ``(path, reason)``: a directory that cannot be listed (or is gone by then), a file
    symlink with an audio name whose target is missing or loops. Hidden files and directories are
    skipped (as SA3 does; they hold editors' and file managers' droppings), file symlinks are
    followed, directory symlinks are not (no cycles)."""
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            yield d, f"cannot list this directory: {_os_reason(e)}"
            continue
        subdirs = []
        for e in entries:
            if _is_hidden(e.name):
                continue
            audio = "." in e.name and e.name.rsplit(".", 1)[-1].lower() in extensions
            try:
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(Path(e.path))
                elif e.is_file():
                    if audio:
                        yield Path(e.path), None
                elif audio and e.is_symlink():
                    try:
                        os.stat(e.path)  # fails for a missing target or a loop: the reason
                    except OSError as err:
                        yield Path(e.path), f"a symbolic link to {os.readlink(e.path)}, which cannot be followed: " \
                                            f"{_os_reason(err)}"
            except OSError as err:
                yield Path(e.path), f"cannot tell what this is: {_os_reason(err)}"
        stack.extend(reversed(subdirs))


def _list_entries(list_file: Path) -> Iterator[Path]:
    """Paths named by a list file: one a line, relative to the list file's directory or absolute;
    blank lines and ``#`` comments are skipped. Lines are file names' bytes (as ``find`` prints
    them): a name that is not UTF-8 is read as it is. A NUL byte means it is no text file."""
    base = list_file.parent
    with open(list_file, "rb") as f:
        for number, raw in enumerate(f, 1):
            if b"\0" in raw:
                raise DatasetError(f"{list_file} is not a text file listing audio files (line {number} holds a NUL byte)")
            line = os.fsdecode(raw).strip()
            if line and not line.startswith("#"):
                p = Path(line)
                yield p if p.is_absolute() else base / p


class _Sources:
    """IN as a stream of ``(relative path, absolute path, None)``, or ``(..., reason)`` for what cannot
    be walked: a directory walked recursively, or a list file."""

    def __init__(self, input: Path) -> None:
        self.input = input
        self.is_list = input.is_file()
        self.root = (input.parent if self.is_list else input).resolve()
        self.extensions = audio_extensions()
        if self.is_list and input.suffix[1:].lower() in self.extensions:
            raise DatasetError(f"{input} is an audio file: IN is a directory of audio files or a text file "
                               "listing them (one file: same-edge encode)")

    def __iter__(self) -> Iterator[tuple[str, Path, str | None]]:
        if not self.is_list:
            for p, reason in _walk(self.root, self.extensions):
                yield p.relative_to(self.root).as_posix(), p, reason
            return
        for p in _list_entries(self.input):
            absolute = Path(os.path.abspath(p))
            try:
                rel = absolute.relative_to(self.root).as_posix()
            except ValueError:
                raise DatasetError(f"{p} (in {self.input}) lies outside the list file's directory {self.root}; "
                                   "outputs mirror paths relative to it") from None
            yield rel, absolute, None

    def count(self) -> tuple[int, int]:
        """(files, bytes) in IN: the progress bar's total (what cannot be walked counts as a file)."""
        files = size = 0
        for _, p, reason in self:
            if reason is not None and p == self.root:
                raise DatasetError(f"{self.input}: {reason}")
            files += 1
            if reason is None:
                with contextlib.suppress(OSError):
                    size += p.stat().st_size
        return files, size


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_writable(out: Path) -> None:
    """Refuse an OUT that cannot be created or written, by probing its nearest existing ancestor
    with a temporary file (removed at once)."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise DatasetError(f"cannot write to {out}: {probe} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".same-edge-probe.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise DatasetError(f"cannot write to {out}: {e.strerror or e}") from None


class _Rec(NamedTuple):
    """What the index keeps in memory per finished output (a few hundred bytes: the index of a
    million-file library fits in well under a GB); the source path is the output's minus its suffix."""

    size: int | None
    mtime_ns: int | None
    sha256: bytes | None
    caption: tuple[int, ...] | None

    @classmethod
    def of(cls, rec: dict[str, Any]) -> _Rec:
        sha, cap = rec.get("sha256"), rec.get("caption")
        return cls(rec.get("size"), rec.get("mtime_ns"), bytes.fromhex(sha) if sha else None, tuple(cap) if cap else None)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, then deliver the first one held to
    whatever handled it before: a result is written to the index (or failures.jsonl) and counted in
    the summary together, never one without the other. Only the main thread receives signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])


def _read_index(path: Path) -> dict[str, _Rec]:
    """The index's records by output path (the last record of an output wins); a torn last line
    (a run killed while appending) is skipped."""
    records: dict[str, _Rec] = {}
    if not path.is_file():
        return records
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                rec = json.loads(line)
                records[rec["out"]] = _Rec.of(rec)
    return records


def _running_tags(path: Path) -> list[str]:
    """The tags recorded in ``RUNNING``: runs that did not finish, whose temporary files may remain."""
    with contextlib.suppress(OSError):
        return [t for t in path.read_text(encoding="ascii", errors="replace").split() if TAG_PATTERN.fullmatch(t)]
    return []


def _sweep_temps(out: Path, tags: list[str]) -> int:
    """Remove the temporary files that the runs tagged ``tags`` left in OUT: names that begin with
    ``.same-edge-tmp.<tag>.`` (or ``..same-edge-tmp.<tag>.``: the latent writer's own, named after
    ours). Nothing else is touched. Returns how many were removed."""
    if not tags:
        return 0
    ours = re.compile(r"\.?" + re.escape(TEMP_PREFIX) + "(?:" + "|".join(map(re.escape, tags)) + r")\.")
    removed = 0
    for d, _, files in os.walk(out):
        for name in files:
            if ours.match(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(d, name))
                    removed += 1
    return removed


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_workers_threads(workers: int | None, threads: int | None, cores: int) -> tuple[int, int]:
    """Fill ``cores``: one single-threaded worker per core unless told otherwise (independent
    processes scale better than threads inside one graph; see docs/DATASETS.md)."""
    if workers is None and threads is None:
        return max(1, cores), 1
    if workers is None:
        return max(1, cores // threads), threads
    if threads is None:
        return workers, max(1, cores // workers)
    return workers, threads


class _Run:
    """One run of the coordinator over a pool."""

    def __init__(self, job: Job, sources: _Sources, pool: Any, verify: bool, records: dict[str, _Rec],
                 progress: bool, total: tuple[int, int]) -> None:
        self.job, self.sources, self.pool, self.verify, self.records = job, sources, pool, verify, records
        self.out = Path(job.out_root)
        self.total_files, self.total_bytes = total
        self.encoded = self.skipped = self.uncaptioned = self.failed = self.restarts = 0
        self.audio_seconds = 0.0
        self.peak_rss_kb = 0
        self.worker_died = False
        self.fatal: str | None = None
        # sa3: the outputs this run's inputs produce (filelist.txt), and those it found it must not list.
        self.listed: set[str] = set()
        self.unlisted: set[str] = set()
        self.walked = False  # every source seen
        self.retry: deque[Task] = deque()
        self.t0 = time.perf_counter()
        self.done_bytes = 0
        self.index = open(self.out / INDEX, "a", encoding="utf-8")  # noqa: SIM115 (closed in finish)
        self.failures = open(self.out / FAILURES, "w", encoding="utf-8")  # noqa: SIM115 (this run's failures)
        from tqdm import tqdm

        # The bar counts source bytes (its ETA assumes bytes track audio length); the text counts files,
        # hours of audio and speed.
        self.bar = tqdm(total=self.total_bytes, disable=not progress, leave=True, dynamic_ncols=True, mininterval=0.5,
                        bar_format="{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}]")
        self._last_refresh = 0.0
        self._postfix()

    # Records -------------------------------------------------------------------------------
    def _postfix(self) -> None:
        wall = time.perf_counter() - self.t0
        done = self.encoded + self.skipped + self.uncaptioned + self.failed
        xrt = self.audio_seconds / wall if wall > 0 else 0.0
        self.bar.set_description_str(f"{done}/{self.total_files} files, {self.audio_seconds / 3600:.2f} h audio, "
                                     f"{xrt:.1f}x real time, {self.failed} failed", refresh=False)

    def _advance(self, size: int) -> None:
        self.done_bytes += size
        self._postfix()
        self.bar.update(size)

    def _record(self, rec: dict[str, Any]) -> None:
        self.index.write(json.dumps(rec, sort_keys=True) + "\n")
        self.index.flush()
        self.records[rec["out"]] = _Rec.of(rec)

    def _list(self, out: str, produced: bool) -> None:
        if self.job.format == "sa3":
            (self.listed if produced else self.unlisted).add(out)

    def _fail(self, task: Task, reason: str) -> None:
        with _signals_held():
            self._failed(task, reason)

    def _failed(self, task: Task, reason: str) -> None:
        self._list(task.out, False)
        self.failed += 1
        self.failures.write(json.dumps({"file": task.path, "relpath": task.src, "reason": reason,
                                        "attempts": max(task.attempts, 1), "time": _utc_now()}) + "\n")
        self.failures.flush()
        if task.kind == "file":
            self._advance(task.size)

    def _done(self, task: Task, res: dict[str, Any]) -> None:
        with _signals_held():
            self._settled(task, res)

    def _settled(self, task: Task, res: dict[str, Any]) -> None:
        self.peak_rss_kb = max(self.peak_rss_kb, int(res.get("rss_kb", 0)))
        status = res["status"]
        if status == "fatal":
            self.fatal = self.fatal or f"{task.out}: {res['reason']}"
            return
        if status == "failed":
            self._failed(task, res["reason"])
            return
        if status == "uptodate":  # --verify: same content; refresh size and mtime so plain re-runs skip it too
            self._record({**{k: res.get(k) for k in ("out", "src", "size", "mtime_ns", "sha256")}, "caption": task.caption})
            self._list(task.out, True)
            self.skipped += 1
            self._advance(task.size)
            return
        rec = {k: res.get(k) for k in ("out", "src", "size", "mtime_ns", "sha256", "frames", "seconds", "out_bytes")}
        self._record({**rec, "caption": task.caption})
        if task.kind == "file":
            self._list(task.out, True)
            self.encoded += 1
            self.audio_seconds += float(res["seconds"])
            self._advance(task.size)

    # Work ----------------------------------------------------------------------------------
    def _up_to_date(self, rec: _Rec | None, st: os.stat_result, caption: list[int] | None, outputs: list[Path]) -> bool:
        return (rec is not None and rec.caption == (tuple(caption) if caption else None)
                and all(p.is_file() for p in outputs)
                and (self.verify or (rec.size == st.st_size and rec.mtime_ns == st.st_mtime_ns)))

    def tasks(self) -> Iterator[Task]:
        """The work, lazily: a task for each source not already up to date in OUT."""
        job = self.job
        if job.format == "sa3":
            rec = self.records.get(SILENCE)
            want = job.sample_size or SA3_DEFAULT_SAMPLE_SIZE
            if rec is None or rec.size != want or not (self.out / SILENCE).is_file():
                yield Task("silence", SILENCE)
        suffix = ".npy" if job.format == "sa3" else ".npz"
        for rel, path, reason in self.sources:
            out_rel = rel + suffix
            task = Task("file", out_rel, rel, str(path))
            if reason is not None:
                self._fail(task, reason)
                continue
            try:
                st = path.stat()
                task.size = st.st_size
            except OSError as e:
                self._fail(task, f"{type(e).__name__}: {e.strerror or e}")
                continue
            outputs = [self.out / out_rel]
            if job.format == "sa3":
                problem = _sa3_name_problem((self.out / out_rel).as_posix(), out_rel)
                if problem is not None:
                    self._fail(task, problem)
                    continue
                outputs.append((self.out / out_rel).with_suffix(".json"))
                txt = path.with_suffix(".txt")
                with contextlib.suppress(OSError):
                    cst = txt.stat()
                    if stat.S_ISREG(cst.st_mode):
                        task.caption = [cst.st_size, cst.st_mtime_ns]
            rec = self.records.get(out_rel)
            if self._up_to_date(rec, st, task.caption, outputs):
                if not self.verify:
                    self._list(out_rel, True)
                    self.skipped += 1
                    self._advance(task.size)
                    continue
                task.expect_sha256 = rec.sha256.hex() if rec.sha256 else None
            if job.format == "sa3":
                if task.caption is not None:
                    try:
                        task.prompt = txt.read_bytes().decode("utf-8").strip()  # SA3: read_text().strip()
                    except (OSError, UnicodeDecodeError) as e:
                        self._fail(task, f"its caption {txt.name} cannot be read as UTF-8 text: {e}")
                        continue
                if not task.prompt:  # no caption, or a blank one: SA3 would put another clip in its place
                    if job.uncaptioned == "skip":
                        self._list(out_rel, False)
                        self.uncaptioned += 1
                        self._advance(task.size)
                        continue
                    task.prompt = ""
            yield task
        self.walked = True

    def run(self) -> None:
        pool, size = self.pool, self.pool.size
        work = self.tasks()
        first = next(work, None)
        if first is None:  # everything is up to date: no worker needs to start
            return
        self.retry.append(first)
        ready = [False] * size
        # Each worker holds up to PREFETCH tasks (one running, the next waiting in its queue), so it
        # never idles while the coordinator is busy or descheduled. A worker runs its tasks in order:
        # the oldest outstanding one is the one it was working on when it died.
        outstanding: list[deque[Task]] = [deque() for _ in range(size)]
        start_failures = [0] * size
        for slot in range(size):
            pool.start(slot)
        exhausted = False
        last_ready = time.monotonic()

        def next_task() -> Task | None:
            nonlocal exhausted
            if self.retry:
                return self.retry.popleft()
            if exhausted or self.fatal:
                return None
            try:
                return next(work)
            except StopIteration:
                exhausted = True
                return None

        while True:
            for slot in range(size):
                while ready[slot] and len(outstanding[slot]) < PREFETCH and not self.fatal:
                    task = next_task()
                    if task is None:
                        break
                    task.attempts += 1
                    outstanding[slot].append(task)
                    pool.submit(slot, task)
            busy = any(outstanding)
            if not busy and (self.fatal or (exhausted and not self.retry)):
                break
            if not busy and not any(ready) and time.monotonic() - last_ready > STARTUP_TIMEOUT_S:
                raise DatasetError(f"no worker started in {STARTUP_TIMEOUT_S:.0f} s (are there free CPUs for them?)")
            for kind, slot, payload in pool.poll(0.25):
                if kind == "ready":
                    ready[slot], start_failures[slot] = True, 0
                    last_ready = time.monotonic()
                elif kind == "result":
                    queue = outstanding[slot]
                    task = next((t for t in queue if t.out == payload["out"]), None)
                    if task is not None:
                        queue.remove(task)
                        self._done(task, payload)
                elif kind == "fatal":
                    raise DatasetError(payload)
                elif kind == "died":
                    self.worker_died = True
                    lost = list(outstanding[slot])
                    outstanding[slot].clear()
                    if ready[slot]:
                        self.restarts += 1
                    else:
                        start_failures[slot] += 1
                        if start_failures[slot] >= 3:
                            raise DatasetError(f"workers keep dying as they start: {payload}")
                    ready[slot] = False
                    for task in reversed(lost[1:]):  # queued behind the culprit, never started: not their fault
                        task.attempts -= 1
                        self.retry.appendleft(task)
                    if lost:
                        task = lost[0]
                        if task.attempts >= MAX_ATTEMPTS:
                            self._fail(task, f"{payload} while encoding it, {task.attempts} times")
                        else:
                            self.retry.appendleft(task)
                    pool.start(slot)
            if time.monotonic() - self._last_refresh > 1.0:  # elapsed time and ETA move while a long file encodes
                self._last_refresh = time.monotonic()
                self._postfix()
                self.bar.refresh()

    def write_filelist(self, complete: bool) -> None:
        """SA3's filelist.txt (what its loader reads first): the samples this run's inputs produce,
        relative to OUT, sorted. A run stopped before it saw every source also keeps the earlier
        outputs it did not reach."""
        names = self.listed if complete else (self.records.keys() | self.listed) - self.unlisted
        names = sorted(n for n in names if n != SILENCE and n.endswith(".npy"))
        with atomic_output(self.out / FILELIST, _own_prefix(self.job.temp_tag)) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(n + "\n" for n in names if (self.out / n).is_file())

    def close(self) -> None:
        self.bar.close()
        self.index.close()
        self.failures.close()


def _sa3_name_problem(out_path: str, out_rel: str) -> str | None:
    """Why SA3's loader would not find this output (``out_path`` absolute, ``out_rel`` as listed in
    filelist.txt), or None. It reads filelist.txt as text in the locale's encoding, one line per
    sample, strips each line, and finds the .json by replacing '.npy' in the whole path."""
    if out_path.count(".npy") != 1:
        return "its path contains '.npy', which SA3's loader replaces to find the .json (rename it)"
    try:
        out_rel.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8, so SA3 cannot read it from filelist.txt (rename it)"
    if "\n" in out_rel or "\r" in out_rel:
        return "its name holds a line break, which would split its line of filelist.txt in two (rename it)"
    if out_rel != out_rel.strip():
        return "its name begins with whitespace, which SA3 strips from each line of filelist.txt (rename it)"
    return None


def _check_out(out: Path, job: Job, overwrite: bool) -> str | None:
    """Refuse an OUT that holds another job's outputs (or unrelated files) unless ``overwrite``.
    Writes nothing; returns what ``_reset_out`` must do once the run holds OUT's lock: None,
    "index" (same job, start afresh) or "outputs" (another job's: delete what its index lists)."""
    marker = out / MARKER
    if not out.exists():
        return None
    if not out.is_dir():
        raise DatasetError(f"{out} exists and is not a directory")
    if marker.is_file():
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        if previous == job.identity():
            return "index" if overwrite else None
        if not overwrite:
            what = ", ".join(f"{k} {previous.get(k)!r} (now {v!r})" for k, v in job.identity().items()
                             if isinstance(previous, dict) and previous.get(k) != v) or "an unreadable job description"
            raise DatasetError(f"{out} holds the outputs of another job ({what}); "
                               "pass --overwrite to replace them, or choose another OUT")
        return "outputs"
    if any(p.name not in (LOCK, RUNNING) for p in out.iterdir()) and not overwrite:  # (a run killed as it began)
        raise DatasetError(f"{out} is not empty and was not written by encode-dataset; "
                           "pass --overwrite to write into it anyway, or choose another OUT")
    return None


def _reset_out(out: Path, action: str | None) -> None:
    """``_check_out``'s verdict, carried out under the lock."""
    if action == "outputs":
        for rel in _read_index(out / INDEX):
            for p in (out / rel, (out / rel).with_suffix(".json")):
                if p.suffix in (".npz", ".npy", ".json") and _inside(p.resolve(), out.resolve()):
                    p.unlink(missing_ok=True)
        for name in (FILELIST, SILENCE, SUMMARY, FAILURES):
            (out / name).unlink(missing_ok=True)
    if action is not None:
        (out / INDEX).unlink(missing_ok=True)


def encode_dataset(input: str | Path, output: str | Path, *, model: str | Path | None = None, workers: int | None = None,
                   threads: int | None = None, format: str = "same-edge", sample_size: int | None = None, pad: bool = False,
                   uncaptioned: str = "skip", downmix: bool = False, verify: bool = False, overwrite: bool = False,
                   ray: str | None = None, progress: bool = True) -> DatasetSummary:
    """Encode every audio file under ``input`` (a directory, walked recursively, or a list file of
    paths) into ``output``, mirroring its tree; resumable, parallel, fault-tolerant.

    ``model``: model directory (default: the bundled demo model). ``workers``/``threads``: worker
    processes (or Ray actors) and LiteRT threads each (default: one single-threaded worker per
    core; with Ray, per CPU of the cluster). ``format``: "same-edge" (``.npz`` latent files) or
    "sa3" (Stable Audio 3's pre-encoded layout). ``sample_size`` (sa3; at most 10 minutes): crop each
    file to its first ``sample_size`` samples at the model's rate, as SA3 does; with ``pad``, keep
    shorter ones padded with digital silence to that length. ``uncaptioned`` (sa3): "skip" files
    without a caption ``.txt`` or with a blank one (SA3 encodes none of theirs) or encode them with
    an "empty" prompt. ``downmix``: mix more than 2 channels down (else
    such files fail). ``verify``: decide what is up to date by the sources' sha256 rather than
    their size and mtime. ``overwrite``: start OUT afresh even if it holds another job's outputs.
    ``ray``: None (local processes), "auto", "local" (a private local Ray instance) or a cluster
    address. ``progress``: show a progress bar on stderr.

    Returns the run's summary (also ``output/summary.json``); failed files are listed in
    ``output/failures.jsonl``. Raises ``DatasetError`` for bad arguments, IN or OUT (nothing
    written) and for a full disk (what was written stays, and a re-run finishes the rest);
    after a Ctrl-C (``KeyboardInterrupt``) or SIGTERM (``Terminated``, or the caller's own SIGTERM
    exception), the run stops, its records and summary are written, and the exception is re-raised.
    """
    from .manifest import read_manifest
    from .models import DEMO_MODEL_DIR

    if format not in FORMATS:
        raise DatasetError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if uncaptioned not in UNCAPTIONED:
        raise DatasetError(f"uncaptioned must be one of {', '.join(UNCAPTIONED)}, got {uncaptioned!r}")
    if format != "sa3" and (sample_size is not None or pad):
        raise DatasetError("sample_size and pad apply to format 'sa3' only")
    if sample_size is not None and sample_size < 1:
        raise DatasetError(f"sample_size must be at least 1 sample, got {sample_size}")
    if pad and sample_size is None:
        raise DatasetError("pad needs a sample_size")
    for name, v in (("workers", workers), ("threads", threads)):
        if v is not None and v < 1:
            raise DatasetError(f"{name} must be at least 1, got {v}")
    input, output = Path(input), Path(output)
    model_dir = Path(model) if model is not None else DEMO_MODEL_DIR
    manifest = read_manifest(model_dir)
    longest = MAX_SAMPLE_SECONDS * manifest.sample_rate
    if sample_size is not None and sample_size > longest:
        raise DatasetError(f"sample_size must be at most {longest} samples ({MAX_SAMPLE_SECONDS // 60} minutes at "
                           f"{manifest.sample_rate} Hz), got {sample_size}: a longer window is a typo, not a crop")
    if not input.exists():
        raise DatasetError(f"input not found: {input}")
    sources = _Sources(input)
    out_abs = Path(os.path.abspath(output))
    if not sources.is_list and _inside(out_abs.resolve(), sources.root):
        raise DatasetError(f"OUT ({output}) lies inside IN ({input}): its outputs would become inputs")
    total = sources.count()
    if total[0] == 0:
        raise DatasetError(f"{input} holds no audio files (looked for: {', '.join(sorted(sources.extensions))})"
                           if not sources.is_list else f"{input} lists no files")
    job = Job(str(Path(os.path.abspath(model_dir))), str(sources.root), str(out_abs), format, sample_size, pad, downmix,
              uncaptioned, manifest.model_id, manifest.precision)
    _check_writable(out_abs)
    reset = _check_out(out_abs, job, overwrite)

    if ray is not None:
        from .dataset_ray import RayPool

        pool: Any = RayPool(ray, job, workers, threads)
    else:
        from .graph import available_cores

        w, t = default_workers_threads(workers, threads, available_cores())
        pool = LocalPool(job, w, t)

    out_abs.mkdir(parents=True, exist_ok=True)
    lock = _lock(out_abs / LOCK)
    if lock is None:
        pool.close(now=True)
        raise DatasetError(f"another encode-dataset run is writing to {output}")
    started, t0 = _utc_now(), time.perf_counter()
    run = None
    stop: BaseException | None = None  # Ctrl-C, SIGTERM (ours or the caller's): records are kept, then re-raised
    try:
        _reset_out(out_abs, reset)
        # RUNNING holds the tags of the runs that have not finished: killed runs' writers may have left
        # temporary files, which bear their tag.
        killed = _running_tags(out_abs / RUNNING)
        with open(out_abs / RUNNING, "a", encoding="ascii") as f:
            f.write(job.temp_tag + "\n")
        if killed:
            _sweep_temps(out_abs, killed)
            with atomic_output(out_abs / RUNNING, _own_prefix(job.temp_tag)) as tmp:
                tmp.write_text(job.temp_tag + "\n", encoding="ascii")
        _write_json(out_abs / MARKER, job.identity(), job.temp_tag)
        index = out_abs / INDEX
        if index.is_file() and index.stat().st_size:
            with open(index, "rb+") as f:  # a run killed mid-line: end that line so the next record stands alone
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        records = _read_index(index)
        run = _Run(job, sources, pool, verify, records, progress, total)
        old_term = None
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            def on_term(signum: int, frame: Any) -> None:
                raise Terminated()

            old_term = signal.signal(signal.SIGTERM, on_term)
        try:
            run.run()
        except Exception:
            raise
        except BaseException as e:  # KeyboardInterrupt, Terminated, the command line's own SIGTERM exception
            stop = e
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            pool.close(now=stop is not None or run.fatal is not None)
    except BaseException:
        pool.close(now=True)
        if run is not None:
            run.close()
        lock.close()
        raise
    wall = time.perf_counter() - t0
    summary = DatasetSummary(
        input=str(input), output=str(output), format=format, mode=pool.mode, model_dir=job.model_dir, model_id=job.model_id,
        precision=job.precision, workers=pool.size, threads=pool.threads, nodes=pool.nodes(), files=run.total_files,
        encoded=run.encoded, skipped=run.skipped, uncaptioned=run.uncaptioned, failed=run.failed,
        audio_seconds=round(run.audio_seconds, 3),
        wall_seconds=round(wall, 3), x_real_time=round(run.audio_seconds / wall, 2) if wall > 0 else 0.0,
        peak_rss_mb=round(run.peak_rss_kb / 1024, 1), worker_restarts=run.restarts, interrupted=stop is not None,
        started=started, finished=_utc_now())
    try:
        run.close()
        if run.worker_died or stop is not None:  # killed writers may have left temporary files
            _sweep_temps(out_abs, [job.temp_tag])
        if format == "sa3":
            run.write_filelist(complete=run.walked and stop is None and run.fatal is None)
        _write_json(out_abs / SUMMARY, {**dataclasses.asdict(summary), "audio_hours": round(run.audio_seconds / 3600, 4),
                                        "fatal": run.fatal}, job.temp_tag)
        if run.fatal is None:
            (out_abs / RUNNING).unlink(missing_ok=True)
    except OSError as e:
        if run.fatal is None:
            run.fatal = f"{SUMMARY}: {e}"
    finally:
        lock.close()
    if run.fatal is not None:
        raise DatasetError(f"stopped: {run.fatal}; the outputs written so far are intact, and a re-run "
                           "finishes the rest once there is room")
    if stop is not None:
        raise stop
    return summary
