"""Encode whole audio libraries to latents: ``same-edge encode-dataset IN OUT``.

One coordinator (this process) walks IN, decides what is already done, hands one file at a time
to each worker and writes every record; the workers (local processes, or Ray actors with
``ray=...``, see ``ray.py``) each hold one encoder and write their outputs straight into
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

from .formats import SA3_DEFAULT_SAMPLE_SIZE, padding_mask, sa3_frames
from .job import FORMATS, UNCAPTIONED, DatasetError, DatasetOptions, DatasetSummary
from .ledger import FAILURES, FILELIST, INDEX, LOCK, MARKER, RUNNING, SILENCE, SUMMARY
from .run import default_workers_threads, encode_dataset
from .sources import audio_extensions

__all__ = [
    "FAILURES",
    "FILELIST",
    "FORMATS",
    "INDEX",
    "LOCK",
    "MARKER",
    "RUNNING",
    "SA3_DEFAULT_SAMPLE_SIZE",
    "SILENCE",
    "SUMMARY",
    "UNCAPTIONED",
    "DatasetError",
    "DatasetOptions",
    "DatasetSummary",
    "audio_extensions",
    "default_workers_threads",
    "encode_dataset",
    "padding_mask",
    "sa3_frames",
]
