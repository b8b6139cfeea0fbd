"""One family of errors: everything a caller can do wrong, each with a message fit for a user.

``Error`` is the base class. The command line prints any ``Error`` (and any ``OSError``) as one
line with exit status 2; every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal


class Error(Exception):
    """Base class of every error same-edge raises for bad input, files or models."""


class AudioFileError(Error, ValueError):
    """An audio file cannot be read or written, or is unusable (empty, truncated, non-finite)."""


class ModelDirError(Error, ValueError):
    """A model directory is missing, incomplete, damaged or inconsistent with its manifest."""


class LatentFileError(Error, ValueError):
    """A latent file is unreadable, malformed, or does not belong to this model."""


class ConfigError(Error, ValueError):
    """An option is out of its range: ``threads``, ``sides``, ``weight_cache_dir``, a window, a block size."""


class StreamError(Error, ValueError):
    """A stream or codec call was given input it cannot take (shape, dtype, values, state)."""


class OutputError(Error, ValueError):
    """The model produced output that is not audio or latents (NaN or Inf), so nothing is written."""


class Terminated(BaseException):
    """A termination signal (SIGTERM, SIGHUP), raised where the process is, so that it unwinds like
    Ctrl-C: outputs in progress are discarded, finished ones kept. A ``BaseException``, like
    ``KeyboardInterrupt``, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
