"""One family of errors: everything a caller can do wrong, each with a message fit for a user.

``Error`` is the base class. The command line prints any ``Error`` (and any ``OSError``) as one
line with exit status 2; every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every error same-edge raises for bad input, files or models."""


class AudioFileError(Error, ValueError):
    """An audio file cannot be read or written, or is unusable (empty, truncated, non-finite)."""


class ModelDirError(Error, ValueError):
    """A model directory is missing, incomplete, damaged or inconsistent with its manifest."""


class LatentFileError(Error, ValueError):
    """A latent file is unreadable, malformed, or does not belong to this model."""


class StreamError(Error, ValueError):
    """A stream or codec call was given input it cannot take (shape, dtype, values, state)."""


class OutputError(Error, ValueError):
    """The model produced output that is not audio or latents (NaN or Inf), so nothing is written."""
