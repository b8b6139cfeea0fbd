"""Wall time of each phase of an export, by side and window: what ``same-edge export --verbose`` prints.

Times are exclusive: a phase nested in another (litert-torch's decompositions inside its trace) is
counted once, in its own row, so the rows add up to the export's wall time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# litert-torch's own progress tasks (litert_torch.progress.task names, by prefix) -> our phase names.
_LITERT_TASKS = (
    ("Torch Export: ", "trace"),
    ("Run FX Passes", "FX passes"),
    ("Lower to MLIR: ", "lowering"),
    ("Lower to MLIR (V2): ", "lowering"),
    ("Create MLIR Module", "lowering"),  # nested in the above: the FX graph interpreted into MLIR
    ("Merge MLIR Modules", "merge MLIR modules"),
    ("Run LiteRT Converter Passes", "MLIR passes"),
    ("MLIR Pipeline Execution", "MLIR passes"),
    ("LiteRT Runtime Constant Folding", "constant folding"),
    ("Write Model to", "serialisation"),
)


@dataclass
class _Open:
    key: tuple[str, str]
    side: str
    start: float
    nested: float = 0.0


class PhaseTimer:
    """Seconds per (phase, window) and side. ``on_phase`` is told each phase as it starts (the
    progress bar's description)."""

    def __init__(self, on_phase: Callable[[str], None] | None = None) -> None:
        self.seconds: dict[tuple[str, str], dict[str, float]] = {}
        self.on_phase = on_phase
        self._open: list[_Open] = []

    @contextlib.contextmanager
    def phase(self, name: str, side: str | None = None, window: str = "") -> Iterator[None]:
        """Time a phase; ``side`` defaults to the enclosing phase's (a litert-torch task within the
        encoder's conversion is the encoder's)."""
        if side is None:
            side = self._open[-1].side if self._open else ""
        if self.on_phase is not None:
            where = ", ".join(part for part in (side, window and f"window {window}") if part)
            self.on_phase(f"{name} ({where})" if where else name)
        entry = _Open((name, window), side, time.perf_counter())
        self.seconds.setdefault(entry.key, {})  # rows in the order phases start
        self._open.append(entry)
        try:
            yield
        finally:  # a failed export still shows where its time went
            self._open.pop()
            elapsed = time.perf_counter() - entry.start
            if self._open:
                self._open[-1].nested += elapsed
            row = self.seconds.setdefault(entry.key, {})
            row[side] = row.get(side, 0.0) + elapsed - entry.nested

    @contextlib.contextmanager
    def reporting_to(self, on_phase: Callable[[str], None]) -> Iterator[None]:
        """Tell ``on_phase`` each phase as it starts, within the block."""
        told, self.on_phase = self.on_phase, on_phase
        try:
            yield
        finally:
            self.on_phase = told

    def current(self) -> tuple[str, str]:
        """(phase, window) of the innermost open phase; ("", "") outside any."""
        return self._open[-1].key if self._open else ("", "")

    def total(self) -> float:
        return sum(sum(row.values()) for row in self.seconds.values())

    def table(self) -> str:
        """One row per phase and window: seconds on the encoder, the decoder, and in all."""
        lines = [f"{'phase':<28} {'window':>6} {'encoder s':>10} {'decoder s':>10} {'total s':>9}"]
        for (name, window), by_side in self.seconds.items():
            cells = [f"{by_side[side]:10.2f}" if side in by_side else f"{'':>10}" for side in ("encoder", "decoder")]
            lines.append(f"{name:<28} {window:>6} {' '.join(cells)} {sum(by_side.values()):9.2f}")
        lines.append(f"{'total':<28} {'':>6} {'':>10} {'':>10} {self.total():9.2f}")
        return "\n".join(lines)


def _litert_phase(task: str) -> tuple[str, str]:
    """(phase, window) of a litert-torch progress task; ``Torch Export: encode_4`` -> (trace, 4)."""
    for prefix, phase in _LITERT_TASKS:
        if task.startswith(prefix):
            signature = task[len(prefix):] if prefix.endswith(": ") else ""
            return phase, signature.rsplit("_", 1)[-1] if signature else ""
    return task[:1].lower() + task[1:], ""


@contextlib.contextmanager
def litert_phases(timer: PhaseTimer) -> Iterator[None]:
    """Route litert-torch's progress tasks, and its decompositions, into ``timer`` while a conversion
    runs (its own console output is silenced: the progress bar shows the phase instead)."""
    from litert_torch import fx_infra, progress

    progress.console.quiet = True  # a task bound at import (the whole conversion) still prints
    task, decompose = progress.task, fx_infra.safe_run_decompositions

    @contextlib.contextmanager
    def timed_task(name: str) -> Iterator[None]:
        phase, window = _litert_phase(name)
        with timer.phase(phase, window=window or timer.current()[1]):  # a nested task is its signature's
            yield

    def timed_decompositions(*args: Any, **kwargs: Any) -> Any:
        # litert-torch decomposes each signature once as it traces (its pre-convert table) and twice
        # as it lowers (pre-lower); the enclosing phase says which, and the signature's window.
        enclosing, window = timer.current()
        name = {"trace": "pre-convert decompositions", "lowering": "pre-lower decompositions"}.get(
            enclosing, "decompositions")
        with timer.phase(name, window=window):
            return decompose(*args, **kwargs)

    progress.task, fx_infra.safe_run_decompositions = timed_task, timed_decompositions
    try:
        yield
    finally:
        progress.task, fx_infra.safe_run_decompositions = task, decompose
