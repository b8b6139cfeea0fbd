"""``encode-dataset`` on a Ray cluster: the same coordinator, with Ray actors as its workers.

Each actor holds one ``Encoder`` (one ``Codec``, ``threads`` LiteRT threads, reserving as many
CPUs) and writes its outputs straight into OUT, so IN, OUT and the model directory must be at the
same paths on every node (a shared file system). The coordinator (``run.py``) hands out one
file per actor at a time and keeps every record, exactly as in local mode; an actor that dies
(its process killed, its node lost) is replaced and its file handed out again.

Ray is imported here only, and only when ``--ray`` is given: it is the ``cluster`` extra.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .job import DatasetError, Job, Task
from .worker import Encoder

LOCAL_OBJECT_STORE_BYTES = 200 << 20  # results are small dicts: a private instance needs little


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DatasetError("--ray needs the cluster extra: pip install 'same-edge[cluster]'") from None
    return ray


class EncoderActor:
    """A Ray actor's state: one ``Encoder``; ``run(task)`` returns its result record."""

    def __init__(self, job: Job, threads: int, make_encoder: Callable[[Job, int], Encoder]) -> None:
        self.encoder = make_encoder(job, threads)

    def ready(self) -> str:
        """The id of the node the actor runs on, once its model is loaded."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def run(self, task: Task) -> dict[str, Any]:
        return self.encoder.run(task)


class RayPool:
    """``workers`` Ray actors (default: the cluster's CPUs / ``threads``), one task at a time each.

    ``address``: "local" starts a private Ray instance on this machine; "auto" joins the running
    cluster (``ray start`` or ``RAY_ADDRESS``); anything else is a cluster address. A Ray session
    this process already has is used as it is.
    """

    mode = "ray"

    def __init__(self, address: str, job: Job, workers: int | None, threads: int | None,
                 make_encoder: Callable[[Job, int], Encoder]) -> None:
        ray = self._ray = _import_ray()
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
            try:
                if address == "local":  # named: without an address, Ray joins a cluster this machine already runs
                    ray.init(address="local", object_store_memory=LOCAL_OBJECT_STORE_BYTES, **kwargs)
                else:
                    ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise DatasetError(f"cannot start or join Ray at {address!r}: {str(e).strip().splitlines()[0]}") from None
            self._owns = True
        self.threads = threads or 1
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // self.threads)
        self.size = workers
        options: dict[str, Any] = {"num_cpus": self.threads, "max_restarts": 0, "max_task_retries": 0}
        self._cls = ray.remote(**options)(EncoderActor)
        self._nodes: set[str] = set()
        self._job, self._make_encoder = job, make_encoder
        self._actors: list[Any] = [None] * workers
        self._refs: dict[Any, tuple[int, str]] = {}  # pending ObjectRef -> (slot, "ready" | "result")

    def start(self, slot: int) -> None:
        actor = self._cls.remote(self._job, self.threads, self._make_encoder)
        self._actors[slot] = actor
        self._refs[actor.ready.remote()] = (slot, "ready")

    def submit(self, slot: int, task: Task) -> None:
        self._refs[self._actors[slot].run.remote(task)] = (slot, "result")

    def poll(self, timeout: float) -> list[tuple[str, int, Any]]:
        ray = self._ray
        if not self._refs:
            import time

            time.sleep(timeout)
            return []
        ready, rest = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        events: list[tuple[str, int, Any]] = []
        for ref in ready:
            if ref not in self._refs:  # its actor's death was reported through another of its refs
                continue
            slot, kind = self._refs.pop(ref)
            try:
                value = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError,
                    ray.exceptions.RayTaskError, ray.exceptions.ObjectLostError) as e:
                self._drop(slot)
                cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                events.append(("died", slot, f"the Ray actor died ({type(e).__name__}: {cause[:200]})"))
                continue
            if kind == "ready":
                self._nodes.add(value)
            events.append((kind, slot, value))
        return events

    def nodes(self) -> int:
        """Distinct nodes that ran an actor."""
        return len(self._nodes)

    def _drop(self, slot: int) -> None:
        """Forget a dead actor and whatever was pending on it (the coordinator re-queues its file)."""
        actor, self._actors[slot] = self._actors[slot], None
        for ref, (s, _) in list(self._refs.items()):
            if s == slot:
                del self._refs[ref]
        if actor is not None:
            with contextlib.suppress(Exception):  # already gone
                self._ray.kill(actor)

    def close(self, now: bool = False) -> None:
        """Kill every actor (their temporary files are swept by the coordinator) and, if this pool
        started Ray, shut it down."""
        for slot in range(len(self._actors)):
            self._drop(slot)
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns = False
