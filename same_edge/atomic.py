"""Atomic output files, the one way same-edge writes a file: a temporary file beside the target,
renamed into place when complete.

A failure (an exception, Ctrl-C, or a termination signal the command line turns into an exception)
removes the temporary file and any directory created for it, and leaves an existing target as it
was: a reader never sees a half-written output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_NAME_MAX = 255  # bytes in one path component, on every file system we write to


def _umask() -> int:
    # os.umask can only be read by setting it, which races with other threads; Linux shows it.
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; return those created, deepest first."""
    created = []
    missing = directory
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    for d in reversed(created):
        d.mkdir(exist_ok=True)
    return created


def _temp_name_prefix(path: Path) -> str:
    # "." + name + "." + 8 random characters must fit in a component: shorten the name if needed.
    # Names are bytes (os.fsencode): a non-UTF-8 name keeps its bytes.
    room = _NAME_MAX - 1 - 1 - 8 - len(os.fsencode(path.suffix))
    stem = os.fsdecode(os.fsencode(path.name)[:room])
    return f".{stem}."


class AtomicPath:
    """A new empty temporary file beside ``target``, for writers that outlive one ``with`` block:
    ``commit()`` moves it into place with the usual permissions; ``discard()`` removes it and the
    directories made for it. Exactly one of them runs; later calls do nothing."""

    def __init__(self, target: str | Path, prefix: str | None = None) -> None:
        """``prefix``: the temporary's name before mkstemp's random part (default: ``.<name>.``)."""
        self.target = Path(target)
        self._created = _make_parents(self.target.parent)
        try:
            fd, name = tempfile.mkstemp(prefix=prefix or _temp_name_prefix(self.target), suffix=self.target.suffix,
                                        dir=self.target.parent)
        except BaseException:
            self._remove_parents()
            raise
        os.close(fd)
        self.path: Path | None = Path(name)  # the temporary file, until committed or discarded

    def commit(self) -> None:
        if self.path is None:
            return
        try:
            os.chmod(self.path, 0o666 & ~_UMASK)
            os.replace(self.path, self.target)
        except BaseException:
            self.discard()
            raise
        self.path = None

    def discard(self) -> None:
        if self.path is None:
            return
        self.path.unlink(missing_ok=True)
        self.path = None
        self._remove_parents()

    def _remove_parents(self) -> None:
        for d in self._created:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if still empty


@contextlib.contextmanager
def atomic_output(path: str | Path, prefix: str | None = None) -> Iterator[Path]:
    """Yield a new empty temporary file beside ``path``; on success it replaces ``path`` with the
    usual permissions, on any exception it is removed (with the directories made for it).
    ``prefix``: as ``AtomicPath``'s."""
    out = AtomicPath(path, prefix)
    try:
        yield out.path  # type: ignore[misc]
    except BaseException:
        out.discard()
        raise
    out.commit()
