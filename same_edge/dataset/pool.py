"""Local worker processes as the coordinator's pool.

A pool is slots that each run one task at a time; ``poll`` returns events ``("ready", slot, info)``,
``("result", slot, result)``, ``("died", slot, reason)`` and ``("fatal", slot, message)``. ``ray.RayPool``
is the other pool."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import signal
from collections.abc import Callable
from typing import Any

from .job import Job, Task
from .worker import Encoder, worker_main


class LocalPool:
    """``workers`` spawned processes, each with one encoder of ``threads`` threads, made by
    ``make_encoder(job, threads)`` (``Encoder``, or what ``DatasetOptions.encoder`` names)."""

    mode = "local"

    def __init__(self, job: Job, workers: int, threads: int, make_encoder: Callable[[Job, int], Encoder]) -> None:
        self.job, self.size, self.threads, self._make_encoder = job, workers, threads, make_encoder
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = [None] * workers
        self._conns: list[Any] = [None] * workers

    def start(self, slot: int) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=worker_main, args=(child, self.job, self.threads, self._make_encoder), daemon=True,
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
