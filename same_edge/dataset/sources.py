"""IN as a stream of audio files: a directory walked recursively, or a list file of paths."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .job import DatasetError

# libsndfile's major formats and the file extensions they go by; RAW (headerless) and MAT4/MAT5
# (.mat is nearly always a Matlab data file, not audio) are left out.
_FORMAT_EXTENSIONS = {
    "WAV": ("wav", "wave"), "WAVEX": ("wav",), "RF64": ("rf64",), "W64": ("w64",), "AIFF": ("aif", "aiff", "aifc"),
    "AU": ("au", "snd"), "FLAC": ("flac",), "OGG": ("ogg", "oga", "opus"), "MP3": ("mp3",), "CAF": ("caf",),
    "IRCAM": ("sf", "ircam"), "NIST": ("nist", "sph"), "VOC": ("voc",), "SVX": ("iff", "svx"), "PAF": ("paf",),
    "PVF": ("pvf",), "XI": ("xi",), "HTK": ("htk",), "SDS": ("sds",), "AVR": ("avr",), "SD2": ("sd2",),
    "MPC2K": ("mpc",), "WVE": ("wve",),
}



def audio_extensions() -> frozenset[str]:
    """Lower-case extensions (no dot) of every format the installed libsndfile reads."""
    import soundfile

    available = soundfile.available_formats()
    return frozenset(ext for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in available for ext in exts)



def _is_hidden(name: str) -> bool:
    return name.startswith(".")



def _os_reason(e: OSError) -> str:
    return f"{type(e).__name__}: {e.strerror or e}"



def _walk(root: Path, extensions: frozenset[str]) -> Iterator[tuple[Path, str | None]]:
    """Audio files under ``root`` in a stable (sorted) order, lazily, as ``(path, None)``; what cannot
    be walked as ``(path, reason)``: a directory that cannot be listed (or is gone by then), a file
    symlink with an audio name whose target is missing or loops. Hidden files and directories are
    skipped (as SA3 does; they hold editors' and file managers' droppings), file symlinks are
    followed, directory symlinks are not (no cycles)."""
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            yield d, f"cannot list this directory: {_os_reason(e)}"
            continue
        subdirs = []
        for e in entries:
            if _is_hidden(e.name):
                continue
            audio = "." in e.name and e.name.rsplit(".", 1)[-1].lower() in extensions
            try:
                if e.is_dir(follow_symlinks=False):
                    subdirs.append(Path(e.path))
                elif e.is_file():
                    if audio:
                        yield Path(e.path), None
                elif audio and e.is_symlink():
                    try:
                        os.stat(e.path)  # fails for a missing target or a loop: the reason
                    except OSError as err:
                        yield Path(e.path), f"a symbolic link to {os.readlink(e.path)}, which cannot be followed: " \
                                            f"{_os_reason(err)}"
            except OSError as err:
                yield Path(e.path), f"cannot tell what this is: {_os_reason(err)}"
        stack.extend(reversed(subdirs))



def _list_entries(list_file: Path) -> Iterator[Path]:
    """Paths named by a list file: one a line, relative to the list file's directory or absolute;
    blank lines and ``#`` comments are skipped. Lines are file names' bytes (as ``find`` prints
    them): a name that is not UTF-8 is read as it is. A NUL byte means it is no text file."""
    base = list_file.parent
    with open(list_file, "rb") as f:
        for number, raw in enumerate(f, 1):
            if b"\0" in raw:
                raise DatasetError(f"{list_file} is not a text file listing audio files (line {number} holds a NUL byte)")
            line = os.fsdecode(raw).strip()
            if line and not line.startswith("#"):
                p = Path(line)
                yield p if p.is_absolute() else base / p



class Sources:
    """IN as a stream of ``(relative path, absolute path, None)``, or ``(..., reason)`` for what cannot
    be walked: a directory walked recursively, or a list file."""

    def __init__(self, input: Path) -> None:
        self.input = input
        self.is_list = input.is_file()
        self.root = (input.parent if self.is_list else input).resolve()
        self.extensions = audio_extensions()
        if self.is_list and input.suffix[1:].lower() in self.extensions:
            raise DatasetError(f"{input} is an audio file: IN is a directory of audio files or a text file "
                               "listing them (one file: same-edge encode)")

    def __iter__(self) -> Iterator[tuple[str, Path, str | None]]:
        if not self.is_list:
            for p, reason in _walk(self.root, self.extensions):
                yield p.relative_to(self.root).as_posix(), p, reason
            return
        for p in _list_entries(self.input):
            absolute = Path(os.path.abspath(p))
            try:
                rel = absolute.relative_to(self.root).as_posix()
            except ValueError:
                raise DatasetError(f"{p} (in {self.input}) lies outside the list file's directory {self.root}; "
                                   "outputs mirror paths relative to it") from None
            yield rel, absolute, None

    def count(self) -> tuple[int, int]:
        """(files, bytes) in IN: the progress bar's total (what cannot be walked counts as a file)."""
        files = size = 0
        for _, p, reason in self:
            if reason is not None and p == self.root:
                raise DatasetError(f"{self.input}: {reason}")
            files += 1
            if reason is None:
                with contextlib.suppress(OSError):
                    size += p.stat().st_size
        return files, size
