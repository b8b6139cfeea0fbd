"""A dataset job: what it is asked to do, what each unit of work is, what a run reports, and its error."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Error

FORMATS = ("same-edge", "sa3")



UNCAPTIONED = ("skip", "empty")



MARKER_VERSION = 1



SA3_LAYOUT = 2  # in an sa3 job's identity: 1 wrote SA3's frames, last frames and unclamped audio otherwise



MAX_SAMPLE_SECONDS = 600  # --sample-size beyond this (twice SA3's longest window) is a typo, not a crop



class DatasetError(Error, ValueError):
    """A dataset job cannot start or go on: bad IN or OUT, another job's outputs, a full disk."""



@dataclass(frozen=True)
class DatasetOptions:
    """How ``encode_dataset`` encodes a library: the command line's options, a field each, checked
    as they are set (``DatasetError``). The defaults are the command line's.

    ``model``: model directory (None: the bundled demo model). ``format``: "same-edge" (``.npz``
    latent files) or "sa3" (Stable Audio 3's pre-encoded layout). ``sample_size`` (sa3; samples
    at the model's rate, at most 10 minutes): crop each file to its first ``sample_size`` samples,
    as SA3 does; with ``pad``, keep shorter ones padded with digital silence to that length.
    ``uncaptioned`` (sa3): "skip" files without a caption ``.txt`` or with a blank one (SA3
    encodes none of theirs) or encode them with an "empty" prompt. ``downmix``: mix more than 2
    channels down (else such files fail). ``verify``: decide what is up to date by the sources'
    sha256 rather than their size and mtime. ``overwrite``: start OUT afresh even if it holds
    another job's outputs. ``workers``/``threads``: worker processes (or Ray actors) and LiteRT
    threads each (None: one single-threaded worker per core; with Ray, per CPU of the cluster).
    ``ray``: None (local processes), "auto", "local" (a private local Ray instance) or a cluster
    address. ``progress``: a progress bar on stderr.
    """

    model: str | Path | None = None
    format: str = "same-edge"
    sample_size: int | None = None
    pad: bool = False
    uncaptioned: str = "skip"
    downmix: bool = False
    verify: bool = False
    overwrite: bool = False
    workers: int | None = None
    threads: int | None = None
    ray: str | None = None
    progress: bool = True
    # What each worker runs: ``worker.Encoder`` (None), or a callable ``(job, threads) -> Encoder``
    # the workers can unpickle (the tests inject faults with an Encoder subclass).
    encoder: Callable[[Job, int], Any] | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DatasetError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.uncaptioned not in UNCAPTIONED:
            raise DatasetError(f"uncaptioned must be one of {', '.join(UNCAPTIONED)}, got {self.uncaptioned!r}")
        if self.format != "sa3" and (self.sample_size is not None or self.pad):
            raise DatasetError("sample_size and pad apply to format 'sa3' only")
        if self.sample_size is not None and self.sample_size < 1:
            raise DatasetError(f"sample_size must be at least 1 sample, got {self.sample_size}")
        if self.pad and self.sample_size is None:
            raise DatasetError("pad needs a sample_size")
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise DatasetError(f"{name} must be at least 1, got {value}")


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
