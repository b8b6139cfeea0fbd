"""OUT's own files: the job marker, the index of finished outputs, the lock, the record of running
runs, and the temporary-file names by which a killed run's leftovers are swept (never a file of
anyone else's); and the checks that OUT may be written."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from ..atomic import atomic_output
from .job import DatasetError, Job

MARKER = ".same-edge-dataset.json"



INDEX = ".same-edge-index.jsonl"



LOCK = ".same-edge-lock"



RUNNING = ".same-edge-running"



FAILURES = "failures.jsonl"



SUMMARY = "summary.json"



FILELIST = "filelist.txt"



SILENCE = "silence.npy"



TEMP_PREFIX = ".same-edge-tmp."  # + the run's tag + "." + random characters: this program's temporary files



TAG_PATTERN = re.compile(r"[0-9a-f]{16}")



def lock_out(path: Path) -> Any:
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



def own_prefix(tag: str) -> str:
    """The temporaries of the run tagged ``tag`` (recorded in ``RUNNING``) are named
    ``.same-edge-tmp.<tag>.<random><suffix>``: the sweep after a killed run removes exactly such
    names, so a file is removed only if this program made it."""
    return f"{TEMP_PREFIX}{tag}."



def write_json(path: Path, obj: dict[str, Any], tag: str) -> None:
    with atomic_output(path, own_prefix(tag)) as tmp:
        tmp.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")), encoding="utf-8")



def is_inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents



def check_writable(out: Path) -> None:
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



class Record(NamedTuple):
    """What the index keeps in memory per finished output (a few hundred bytes: the index of a
    million-file library fits in well under a GB); the source path is the output's minus its suffix."""

    size: int | None
    mtime_ns: int | None
    sha256: bytes | None
    caption: tuple[int, ...] | None

    @classmethod
    def of(cls, rec: dict[str, Any]) -> Record:
        sha, cap = rec.get("sha256"), rec.get("caption")
        return cls(rec.get("size"), rec.get("mtime_ns"), bytes.fromhex(sha) if sha else None, tuple(cap) if cap else None)



def read_index(path: Path) -> dict[str, Record]:
    """The index's records by output path (the last record of an output wins); a torn last line
    (a run killed while appending) is skipped."""
    records: dict[str, Record] = {}
    if not path.is_file():
        return records
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                rec = json.loads(line)
                records[rec["out"]] = Record.of(rec)
    return records



def running_tags(path: Path) -> list[str]:
    """The tags recorded in ``RUNNING``: runs that did not finish, whose temporary files may remain."""
    with contextlib.suppress(OSError):
        return [t for t in path.read_text(encoding="ascii", errors="replace").split() if TAG_PATTERN.fullmatch(t)]
    return []



def sweep_temps(out: Path, tags: list[str]) -> int:
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



def check_out(out: Path, job: Job, overwrite: bool) -> str | None:
    """Refuse an OUT that holds another job's outputs (or unrelated files) unless ``overwrite``.
    Writes nothing; returns what ``reset_out`` must do once the run holds OUT's lock: None,
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



def reset_out(out: Path, action: str | None) -> None:
    """``check_out``'s verdict, carried out under the lock."""
    if action == "outputs":
        for rel in read_index(out / INDEX):
            for p in (out / rel, (out / rel).with_suffix(".json")):
                if p.suffix in (".npz", ".npy", ".json") and is_inside(p.resolve(), out.resolve()):
                    p.unlink(missing_ok=True)
        for name in (FILELIST, SILENCE, SUMMARY, FAILURES):
            (out / name).unlink(missing_ok=True)
    if action is not None:
        (out / INDEX).unlink(missing_ok=True)



def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start_run(out: Path, job: Job, reset: str | None) -> dict[str, Record]:
    """Take over OUT for the run ``job`` (its lock held): carry out ``check_out``'s verdict, sweep
    the temporaries of killed runs, record this run as running, write the job marker, and return
    the index of what is done."""
    reset_out(out, reset)
    # RUNNING holds the tags of the runs that have not finished: killed runs' writers may have left
    # temporary files, which bear their tag.
    killed = running_tags(out / RUNNING)
    with open(out / RUNNING, "a", encoding="ascii") as f:
        f.write(job.temp_tag + "\n")
    if killed:
        sweep_temps(out, killed)
        with atomic_output(out / RUNNING, own_prefix(job.temp_tag)) as tmp:
            tmp.write_text(job.temp_tag + "\n", encoding="ascii")
    write_json(out / MARKER, job.identity(), job.temp_tag)
    index = out / INDEX
    if index.is_file() and index.stat().st_size:
        with open(index, "rb+") as f:  # a run killed mid-line: end that line so the next record stands alone
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    return read_index(index)
