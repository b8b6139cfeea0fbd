"""A worker: one encoder, one file at a time, its outputs written straight into OUT. The same
``Encoder`` runs in local worker processes (``worker_main``) and in Ray actors."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import AtomicPath
from .formats import SA3_DEFAULT_SAMPLE_SIZE, NpyFramesWriter, padding_mask, sa3_frames
from .job import Job, Task
from .ledger import own_prefix, write_json

HASH_BLOCK = 1 << 20



PAD_BLOCK_FRAMES = 64  # digital silence is pushed this many frames at a time (memory stays flat)



# errno values that no other file would escape: stop the run rather than fail every file after it.
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}






def peak_rss_kb() -> int:
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





def file_fingerprint(path: str) -> tuple[int, int, str]:
    """(size, mtime_ns, sha256 hex) of a file; the stat comes first, so a file changed while it is
    hashed or encoded looks changed to the next run."""
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_BLOCK):
            h.update(chunk)
    return st.st_size, st.st_mtime_ns, h.hexdigest()



class Encoder:
    """A worker's state: one ``Codec`` (encoder side) and the job; ``run(task)`` encodes one task and
    returns its result record. Used by local worker processes and by Ray actors alike."""

    def __init__(self, job: Job, threads: int) -> None:
        from ..codec import Codec

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
            result.update(self.encode(task))
        except OSError as e:
            fatal = e.errno in FATAL_ERRNOS
            result.update(status="fatal" if fatal else "failed", reason=f"{type(e).__name__}: {e}")
        except Exception as e:  # a bad file or a bug: recorded, never stops the run
            result.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": "))
        finally:
            result["compute_s"] = time.perf_counter() - t0
            result["rss_kb"] = peak_rss_kb()
            result["pid"] = os.getpid()
        return result

    def encode(self, task: Task) -> dict[str, Any]:
        """Write one task's outputs; returns the result's fields, with ``status`` "ok" or "uptodate".
        Raises for a bad file (``run`` records why)."""
        if task.kind == "silence":
            return {**self._silence(task), "status": "ok"}
        size, mtime_ns, sha = file_fingerprint(task.path)
        fields = {"size": size, "mtime_ns": mtime_ns, "sha256": sha}
        if task.expect_sha256 is not None and sha == task.expect_sha256:
            return {**fields, "status": "uptodate"}
        return {**fields, **(self._sa3(task) if self.job.format == "sa3" else self._same_edge(task)), "status": "ok"}

    def _reader(self, task: Task):  # noqa: ANN202 (AudioReader)
        from ..audio import AudioReader

        c = self.codec
        return AudioReader(task.path, c.sample_rate, c.channels, self.job.downmix)

    def _same_edge(self, task: Task) -> dict[str, Any]:
        from ..files import encode_file

        out = self.out_root / task.out
        # The latent file's writer names its own temporary file after its target: ours, so it is ours too.
        tmp = AtomicPath(out, own_prefix(self.job.temp_tag))
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
        w = NpyFramesWriter(out, (c.latent_dim,), job.temp_tag)
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
        write_json(out.with_suffix(".json"), meta, job.temp_tag)
        w.close()
        return {"seconds": taken / c.sample_rate, "frames": keep, "out_bytes": out.stat().st_size}

    def _silence(self, task: Task) -> dict[str, Any]:
        c = self.codec
        samples = self.job.sample_size or SA3_DEFAULT_SAMPLE_SIZE
        enc = c.stream_encoder(largest_window=None)
        out = self.out_root / task.out
        w = NpyFramesWriter(out, (1, c.latent_dim), self.job.temp_tag)  # SA3 saves a batch of one, squeezed on load
        try:
            self._push_silence(enc, w.write, sa3_frames(samples, c.manifest.model.chunk_samples, c.hop) * c.hop)
            w.write(enc.flush())
        except BaseException:
            w.abort()
            raise
        w.close()
        return {"seconds": 0.0, "frames": w.frames, "out_bytes": out.stat().st_size, "size": samples}



def worker_main(conn: multiprocessing.connection.Connection, job: Job, threads: int,
                make_encoder: Callable[[Job, int], Encoder]) -> None:
    """A local worker process: load the encoder, then answer tasks until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the coordinator decides
    try:
        encoder = make_encoder(job, threads)
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
