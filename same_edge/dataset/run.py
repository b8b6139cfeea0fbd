"""The coordinator: one run of ``encode_dataset`` over a pool. It walks IN, decides what is already
done, hands out the work, and writes every record, in local and Ray mode alike."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import stat
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..atomic import atomic_output
from ..errors import Terminated
from .formats import SA3_DEFAULT_SAMPLE_SIZE, sa3_name_problem
from .job import MAX_SAMPLE_SECONDS, DatasetError, DatasetOptions, DatasetSummary, Job, Task
from .ledger import (
    FAILURES,
    FILELIST,
    INDEX,
    LOCK,
    RUNNING,
    SILENCE,
    SUMMARY,
    Record,
    check_out,
    check_writable,
    is_inside,
    lock_out,
    own_prefix,
    start_run,
    sweep_temps,
    utc_now,
    write_json,
)
from .pool import LocalPool
from .sources import Sources
from .worker import Encoder

MAX_ATTEMPTS = 2  # a file whose worker dies this many times is recorded as a failure



PREFETCH = 2  # tasks handed to a worker at a time: the one it runs and the next



STARTUP_TIMEOUT_S = 600.0  # no worker ready for this long: the pool cannot start (e.g. Ray has no free CPUs)



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



class Run:
    """One run of the coordinator over a pool."""

    def __init__(self, job: Job, sources: Sources, pool: Any, verify: bool, records: dict[str, Record],
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
        self.records[rec["out"]] = Record.of(rec)

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
                                        "attempts": max(task.attempts, 1), "time": utc_now()}) + "\n")
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
    def _up_to_date(self, rec: Record | None, st: os.stat_result, caption: list[int] | None, outputs: list[Path]) -> bool:
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
                problem = sa3_name_problem((self.out / out_rel).as_posix(), out_rel)
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
        with atomic_output(self.out / FILELIST, own_prefix(self.job.temp_tag)) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(n + "\n" for n in names if (self.out / n).is_file())

    def close(self) -> None:
        self.bar.close()
        self.index.close()
        self.failures.close()



def encode_dataset(input: str | Path, output: str | Path, options: DatasetOptions | None = None) -> DatasetSummary:
    """Encode every audio file under ``input`` (a directory, walked recursively, or a list file of
    paths) into ``output``, mirroring its tree; resumable, parallel, fault-tolerant. ``options``:
    how (``DatasetOptions``; default: the bundled demo model, ``same-edge`` files, every core).

    Returns the run's summary (also ``output/summary.json``); failed files are listed in
    ``output/failures.jsonl``. Raises ``DatasetError`` for bad IN or OUT (nothing written) and for
    a full disk (what was written stays, and a re-run finishes the rest); after a Ctrl-C
    (``KeyboardInterrupt``) or SIGTERM (``Terminated``, or the caller's own SIGTERM exception), the
    run stops, its records and summary are written, and the exception is re-raised.
    """
    from ..manifest import read_manifest
    from ..models import DEMO_MODEL_DIR

    options = options or DatasetOptions()
    input, output = Path(input), Path(output)
    model_dir = Path(options.model) if options.model is not None else DEMO_MODEL_DIR
    manifest = read_manifest(model_dir)
    longest = MAX_SAMPLE_SECONDS * manifest.model.sample_rate
    if options.sample_size is not None and options.sample_size > longest:
        raise DatasetError(f"sample_size must be at most {longest} samples ({MAX_SAMPLE_SECONDS // 60} minutes at "
                           f"{manifest.model.sample_rate} Hz), got {options.sample_size}: a longer window is a typo, not a crop")
    if not input.exists():
        raise DatasetError(f"input not found: {input}")
    sources = Sources(input)
    out_abs = Path(os.path.abspath(output))
    if not sources.is_list and is_inside(out_abs.resolve(), sources.root):
        raise DatasetError(f"OUT ({output}) lies inside IN ({input}): its outputs would become inputs")
    total = sources.count()
    if total[0] == 0:
        raise DatasetError(f"{input} holds no audio files (looked for: {', '.join(sorted(sources.extensions))})"
                           if not sources.is_list else f"{input} lists no files")
    job = Job(str(Path(os.path.abspath(model_dir))), str(sources.root), str(out_abs), options.format,
              options.sample_size, options.pad, options.downmix, options.uncaptioned, manifest.model_id,
              manifest.precision)
    check_writable(out_abs)
    reset = check_out(out_abs, job, options.overwrite)
    make_encoder = options.encoder or Encoder

    if options.ray is not None:
        from .ray import RayPool

        pool: Any = RayPool(options.ray, job, options.workers, options.threads, make_encoder)
    else:
        from ..graph import available_cores

        w, t = default_workers_threads(options.workers, options.threads, available_cores())
        pool = LocalPool(job, w, t, make_encoder)

    out_abs.mkdir(parents=True, exist_ok=True)
    lock = lock_out(out_abs / LOCK)
    if lock is None:
        pool.close(now=True)
        raise DatasetError(f"another encode-dataset run is writing to {output}")
    started, t0 = utc_now(), time.perf_counter()
    run = None
    stop: BaseException | None = None  # Ctrl-C, SIGTERM (ours or the caller's): records are kept, then re-raised
    try:
        records = start_run(out_abs, job, reset)
        run = Run(job, sources, pool, options.verify, records, options.progress, total)
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
        input=str(input), output=str(output), format=options.format, mode=pool.mode, model_dir=job.model_dir,
        model_id=job.model_id, precision=job.precision, workers=pool.size, threads=pool.threads, nodes=pool.nodes(),
        files=run.total_files,
        encoded=run.encoded, skipped=run.skipped, uncaptioned=run.uncaptioned, failed=run.failed,
        audio_seconds=round(run.audio_seconds, 3),
        wall_seconds=round(wall, 3), x_real_time=round(run.audio_seconds / wall, 2) if wall > 0 else 0.0,
        peak_rss_mb=round(run.peak_rss_kb / 1024, 1), worker_restarts=run.restarts, interrupted=stop is not None,
        started=started, finished=utc_now())
    try:
        run.close()
        if run.worker_died or stop is not None:  # killed writers may have left temporary files
            sweep_temps(out_abs, [job.temp_tag])
        if options.format == "sa3":
            run.write_filelist(complete=run.walked and stop is None and run.fatal is None)
        write_json(out_abs / SUMMARY, {**dataclasses.asdict(summary), "audio_hours": round(run.audio_seconds / 3600, 4),
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
