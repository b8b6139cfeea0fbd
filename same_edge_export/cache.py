"""A cache of fp32 conversions, the slow part of an export: one entry per conversion key.

The key is the sha256 of everything the fp32 graphs depend on: the config file, the checkpoint,
the windows, the versions of the tools that trace, lower and serialise, and the export sources
that shape the graphs. An entry is a directory ``<root>/<key>/`` holding ``encoder.tflite``,
``decoder.tflite`` and ``entry.json`` (each graph's size and sha256). It is staged under a
temporary name and renamed into place whole; a reader uses it only when every graph matches its
recorded size and sha256, and otherwise says so, removes it and converts again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from same_edge.graph import sha256_file
from same_edge.manifest import GRAPH_FILES, SIDES

CACHE_FORMAT = 1  # bump when the entry layout changes: older entries then simply miss
ENTRY_NAME = "entry.json"
# The export sources whose code decides the fp32 graphs' bytes (quantisation and checks come later).
GRAPH_SOURCES = ("config.py", "checkpoint.py", "model.py", "graphs.py", "convert.py", "phases.py")
# The tools whose versions decide them: tracing, lowering and MLIR passes, the flatbuffer schema.
GRAPH_TOOLS = ("torch", "litert-torch", "litert-converter", "ai-edge-litert", "same-edge")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/same-edge/conversions``, else ``~/.cache/same-edge/conversions``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # a relative XDG path is invalid
    return root / "same-edge" / "conversions"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def sources_sha256() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in GRAPH_SOURCES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    return h.hexdigest()


def conversion_key(config_path: str | Path, checkpoint_path: str | Path, windows: Sequence[int]) -> str:
    """sha256 of what the fp32 conversion depends on."""
    inputs = {
        "format": CACHE_FORMAT,
        "config_sha256": hashlib.sha256(Path(config_path).read_bytes()).hexdigest(),
        "checkpoint_sha256": sha256_file(checkpoint_path),
        "windows": sorted(int(w) for w in windows),
        "versions": {package: _version(package) for package in GRAPH_TOOLS},
        "sources_sha256": sources_sha256(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


class _Damaged(Exception):
    pass


def _say(message: str) -> None:
    print(f"same-edge: {message}", file=sys.stderr)


class ConversionCache:
    """fp32 graphs by conversion key. ``say`` reports, in one line, an entry found damaged or a
    store that failed (neither stops an export: it converts, or goes on uncached)."""

    def __init__(self, root: str | Path, say: Callable[[str], None] = _say) -> None:
        self.root = Path(root)
        self.say = say

    def load(self, key: str) -> dict[str, bytes] | None:
        """Both sides' fp32 flatbuffers, or None on a miss or a damaged entry (then removed)."""
        entry = self.root / key
        if not entry.exists():
            return None
        try:
            return self._read(entry, key)
        except _Damaged as e:
            reason = str(e)
        except (OSError, ValueError, KeyError, TypeError) as e:
            reason = f"{type(e).__name__}: {e}"
        self.say(f"conversion cache entry {key[:12]} is damaged ({reason}); converting again")
        shutil.rmtree(entry, ignore_errors=True)
        return None

    @staticmethod
    def _read(entry: Path, key: str) -> dict[str, bytes]:
        recorded = json.loads((entry / ENTRY_NAME).read_text())
        if recorded.get("format") != CACHE_FORMAT or recorded.get("key") != key:
            raise _Damaged(f"{ENTRY_NAME} belongs to another key or format")
        graphs = {}
        for side in SIDES:
            name = GRAPH_FILES[side]
            data = (entry / name).read_bytes()
            want = recorded["files"][name]
            if len(data) != want["bytes"]:
                raise _Damaged(f"{name} is {len(data)} bytes, {want['bytes']} recorded")
            if hashlib.sha256(data).hexdigest() != want["sha256"]:
                raise _Damaged(f"{name}'s sha256 differs from the recorded one")
            graphs[side] = data
        return graphs

    def store(self, key: str, graphs: dict[str, bytes]) -> None:
        """Write an entry: staged beside its place, then renamed into it whole."""
        entry = self.root / key
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=self.root))
        except OSError as e:
            self.say(f"cannot write the conversion cache ({e}); going on without it")
            return
        try:
            files = {}
            for side, data in graphs.items():
                (staging / GRAPH_FILES[side]).write_bytes(data)
                files[GRAPH_FILES[side]] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            (staging / ENTRY_NAME).write_text(json.dumps({"format": CACHE_FORMAT, "key": key, "files": files},
                                                         indent=1) + "\n")
            try:
                os.rename(staging, entry)
            except OSError:
                if not entry.is_dir():  # else another export stored the same key first: keep theirs
                    raise
        except OSError as e:
            self.say(f"cannot write the conversion cache ({e}); going on without it")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
