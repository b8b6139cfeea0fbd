"""Faults for the encode-dataset tests, injected through ``DatasetOptions(encoder=...)``: an
``Encoder`` that kills its own process on a named file (always, or once), finds the disk full,
works slowly, or waits until workers on several nodes have started.

Workers import this module: spawned processes get the tests' ``sys.path``; Ray actors get it
pickled by value (``ray.cloudpickle.register_pickle_by_value``).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from same_edge.dataset.job import Job, Task
from same_edge.dataset.worker import Encoder


@dataclass(frozen=True)
class Faults:
    crash_on: str | None = None  # a file name: its worker is killed (SIGKILL) whenever it takes it
    crash_once_on: str | None = None  # ... the first time only (a flag file in once_dir)
    once_dir: str | None = None
    enospc_on: str | None = None  # a file name: writing its output finds the disk full
    slow_s: float = 0.0  # each file takes this much longer
    barrier_nodes: int = 0  # with once_dir: start work once workers on this many nodes have started

    def encoder(self) -> partial[FaultyEncoder]:
        """What ``DatasetOptions.encoder`` takes."""
        return partial(FaultyEncoder, faults=self)


class FaultyEncoder(Encoder):
    def __init__(self, job: Job, threads: int, faults: Faults) -> None:
        super().__init__(job, threads)
        self.faults, self.barrier_passed = faults, False

    def encode(self, task: Task) -> dict[str, Any]:
        f, name = self.faults, Path(task.src).name
        if f.barrier_nodes and not self.barrier_passed:
            # Ray: distinct raylets are distinct nodes.
            marks = Path(f.once_dir)
            (marks / f"node-{os.environ.get('RAY_RAYLET_PID', 'local')}-{os.getpid()}").touch()
            end = time.monotonic() + 120
            while len({m.name.split("-")[1] for m in marks.glob("node-*")}) < f.barrier_nodes:
                if time.monotonic() > end:
                    raise RuntimeError("test barrier: the other nodes never started")
                time.sleep(0.05)
            self.barrier_passed = True
        time.sleep(f.slow_s)
        if f.crash_on == name:
            os.kill(os.getpid(), signal.SIGKILL)
        if f.crash_once_on == name:
            flag = Path(f.once_dir) / f"crashed-{name}"
            if not flag.exists():
                flag.touch()
                os.kill(os.getpid(), signal.SIGKILL)
        if f.enospc_on == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.out_root / task.out))
        return super().encode(task)


def use_by_default(monkeypatch: Any, faults: Faults) -> None:
    """Make ``faults`` the encoder of runs that name none (the command line's)."""
    from same_edge.dataset import run

    monkeypatch.setattr(run, "Encoder", faults.encoder())
