"""The export's error family: every reason an export refuses, each with a message fit for a user.

``ExportError`` is a ``same_edge.Error``, so the command line prints it as one line (exit status 2)
instead of a traceback. An export that raises one writes no model directory.
"""

from __future__ import annotations

from same_edge.errors import Error


class ExportError(Error):
    """Base class of every reason an export refuses (config, checkpoint, or a graph it made)."""


class GraphCheckError(ExportError, RuntimeError):
    """A converted graph failed a check the shipped graphs must pass: built-in ops only, every
    FULLY_CONNECTED weight in the precision's dtype, every op in XNNPACK."""
