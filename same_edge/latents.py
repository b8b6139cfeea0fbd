"""Latent files (``.npz``): the latents with what decoding needs to give back the exact input.

The latents are stored frame-major (``fortran_order`` in the ``.npy`` header: each frame's
``latent_dim`` values are contiguous) and uncompressed, so a file is written and read a block of
frames at a time: encoding and decoding an hour of audio hold a block, not the hour.

Reading trusts nothing: every header field is type- and range-checked, a member's stored size
must agree with the shape its header declares (no decompression bombs), and members are read a
block at a time whatever their compression.

A file states its format version (``format_version.npy``, ``FORMAT_VERSION``); one written by a
newer same-edge is refused by name rather than misread. A file without it is version 1, the
layout before the field existed (the same members). libsame_edge's command line (native/cli/npz.c)
reads and writes the same layout and checks the same version.
"""

from __future__ import annotations

import contextlib
import lzma
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .atomic import AtomicPath
from .errors import LatentFileError

LATENTS_MEMBER = "latents.npy"
VERSION_MEMBER = "format_version.npy"
FORMAT_VERSION = 1
SUFFIX = ".npz"
MAX_LATENT_DIM = 1 << 16
MAX_LENGTH = 1 << 36  # samples: 18 days at 44.1 kHz
MAX_SCALAR_MEMBER_BYTES = 4096
MAX_ROW_MAJOR_BYTES = 1 << 28  # np.savez-style [dim, L] members are read whole: at most 256 MB
_ZIP_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError,
               NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class LatentHeader:
    sample_rate: int  # Hz of the audio the latents were encoded from (the model's rate)
    length: int  # samples of that audio, so that decoding trims to the exact input length
    model_id: str  # Manifest.model_id of the model that encoded them
    source_rate: int  # Hz of the original file, for decoding back at that rate (--keep-rate)


@dataclass(frozen=True)
class LatentFile:
    """A latent file's contents: ``latents`` ``[latent_dim, L]`` float32 and their ``header``.

    ``save(path)`` and ``load(path)`` write and read ``.npz`` files (atomically; whole, see
    ``LatentWriter``/``LatentReader`` for a block at a time); ``to_bytes``/``from_bytes`` the same
    bytes in memory."""

    latents: np.ndarray  # [latent_dim, L] float32
    header: LatentHeader

    def save(self, path: str | Path) -> None:
        if self.latents.ndim != 2:
            raise LatentFileError(f"latents must have shape [latent_dim, L], got {list(self.latents.shape)}")
        with LatentWriter(path, self.latents.shape[0]) as w:
            w.write(self.latents.astype(np.float32))
            w.header = self.header

    @classmethod
    def load(cls, path: str | Path) -> LatentFile:
        with LatentReader(path) as r:
            dim, total = r.shape
            latents = np.concatenate([np.zeros((dim, 0), np.float32), *r.blocks(max(total, 1))], axis=1)
            return cls(latents, r.header)

    def to_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"latents{SUFFIX}"
            self.save(path)
            return path.read_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LatentFile:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"latents{SUFFIX}"
            path.write_bytes(data)
            return cls.load(path)


def _member(name: str) -> zipfile.ZipInfo:
    """A member dated 1980-01-01 (the zip epoch): the same latents give the same file, byte for byte."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info


_NPY_HEADER_BYTES = 128  # the latents member's .npy 2.0 header: fixed, so that its frame count is patched in at close


def _npy_header(latent_dim: int, frames: int) -> bytes:
    text = repr({"descr": "<f4", "fortran_order": True, "shape": (latent_dim, frames)})
    text = text.ljust(_NPY_HEADER_BYTES - 12 - 1) + "\n"  # magic, version and length take 12 bytes
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text.encode("latin1")


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() != SUFFIX:
        raise LatentFileError(f"latent files are {SUFFIX}, got {path.name}")


class LatentWriter:
    """Write a latent file frame block by frame block; it appears, whole, only on ``close``.

    >>> with LatentWriter(path, latent_dim=256) as w:
    ...     w.write(z)                 # [latent_dim, k] float32, any k, as many times as needed
    ...     w.header = LatentHeader(...)
    """

    def __init__(self, path: str | Path, latent_dim: int) -> None:
        self.path = Path(path)
        _check_suffix(self.path)
        if self.path.is_dir():
            raise LatentFileError(f"cannot write {self.path}: it is a directory")
        self.latent_dim = latent_dim
        self.frames = 0
        self.header: LatentHeader | None = None
        self._out = AtomicPath(self.path)
        # The frames go straight into the zip, under a header whose frame count close() fills in:
        # the file needs its own size on disk, once.
        self._zip = zipfile.ZipFile(self._out.path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self._info = _member(LATENTS_MEMBER)
        self._frames = self._zip.open(self._info, "w", force_zip64=True)
        self._frames.write(_npy_header(latent_dim, 0))

    def write(self, z: np.ndarray) -> None:
        """Append frames: ``[latent_dim, k]`` float32."""
        if z.ndim != 2 or z.shape[0] != self.latent_dim:
            raise LatentFileError(f"latents must have shape [{self.latent_dim}, k], got {list(z.shape)}")
        self._frames.write(np.ascontiguousarray(z.T, dtype="<f4").tobytes())
        self.frames += z.shape[1]

    def close(self) -> None:
        """Assemble the ``.npz`` (needs ``header``) and move it into place."""
        try:
            if self.header is None:
                raise LatentFileError("LatentWriter.header must be set before close")
            self._frames.close()
            self._patch_frame_count()
            for key, value in {"format_version": np.int64(FORMAT_VERSION), **asdict(self.header)}.items():
                with self._zip.open(_member(f"{key}.npy"), "w") as member:
                    np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            self._zip.close()
        except BaseException:
            self.abort()
            raise
        self._out.commit()

    def _patch_frame_count(self) -> None:
        """Write the final ``.npy`` header over the placeholder (the same length), then the member's
        CRC over what it now holds, read back from the file (the frames, once)."""
        fp, end = self._zip.fp, self._zip.fp.tell()
        fp.seek(self._info.header_offset + 26)  # the local header's name and extra-field lengths
        name_len, extra_len = struct.unpack("<HH", fp.read(4))
        data = self._info.header_offset + 30 + name_len + extra_len
        fp.seek(data)
        fp.write(_npy_header(self.latent_dim, self.frames))
        fp.seek(data)
        crc, left = 0, self._info.file_size
        while left:
            block = fp.read(min(left, 1 << 20))
            if not block:
                raise OSError(f"{self._out.path} was cut short while being written")
            crc, left = zlib.crc32(block, crc), left - len(block)
        self._info.CRC = crc  # the central directory, written at close, takes it from here
        fp.seek(self._info.header_offset + 14)
        fp.write(struct.pack("<I", crc))
        fp.seek(end)

    def abort(self) -> None:
        """Discard what was written; no file appears."""
        with contextlib.suppress(Exception):
            self._frames.close()
        with contextlib.suppress(Exception):
            self._zip.close()
        self._out.discard()

    def __enter__(self) -> LatentWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _int_field(value: np.ndarray, name: str, low: int, high: int) -> int:
    if value.shape != () or value.dtype.kind not in "iu":
        raise ValueError(f"header field {name} must be an integer, got {value.dtype} {list(value.shape)}")
    v = int(value)
    if not low <= v <= high:
        raise ValueError(f"header field {name} must lie in [{low}, {high}], got {v}")
    return v


class LatentReader:
    """Read a latent file's header at once and its frames a block at a time.

    ``shape`` is ``(latent_dim, L)``; ``blocks(n)`` yields ``[latent_dim, <= n]`` float32 arrays.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LatentFileError(f"latent file not found: {self.path}")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except _ZIP_ERRORS as e:
            raise LatentFileError(f"{self.path} is not a same-edge latent file ({type(e).__name__}: {e})") from None
        try:
            self._read_header()
        except _ZIP_ERRORS as e:
            self._zip.close()
            if isinstance(e, LatentFileError):
                raise
            raise LatentFileError(f"{self.path} is not a same-edge latent file ({type(e).__name__}: {e})") from None

    def _read_header(self) -> None:
        self.format_version = 1  # a file from before the field: the same layout
        if VERSION_MEMBER in self._zip.namelist():
            self.format_version = _int_field(self._scalar("format_version"), "format_version", 1, 1 << 31)
            if self.format_version > FORMAT_VERSION:
                raise LatentFileError(f"{self.path} is a latent file of format version {self.format_version}, written "
                                      f"by a newer same-edge; this one reads versions up to {FORMAT_VERSION}")
        values = {f.name: self._scalar(f.name) for f in fields(LatentHeader)}
        model_id = values["model_id"]
        if model_id.shape != () or model_id.dtype.kind != "U" or not 0 < len(str(model_id)) <= 200:
            raise ValueError("header field model_id must be a short string")
        self.header = LatentHeader(_int_field(values["sample_rate"], "sample_rate", 1, 10_000_000),
                                   _int_field(values["length"], "length", 1, MAX_LENGTH), str(model_id),
                                   _int_field(values["source_rate"], "source_rate", 1, 10_000_000))
        info = self._zip.getinfo(LATENTS_MEMBER)
        with self._zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran_order, dtype = read_header(f)
            self._data_offset = f.tell()
        if len(shape) != 2 or dtype != np.dtype("<f4") or not 1 <= shape[0] <= MAX_LATENT_DIM or shape[1] < 0:
            raise LatentFileError(f"{self.path} holds malformed latents ({dtype} {list(shape)})")
        expected = self._data_offset + 4 * shape[0] * shape[1]
        if info.file_size != expected:
            raise LatentFileError(f"{self.path}: the latents member holds {info.file_size} bytes where its header "
                                  f"declares {expected}")
        if not fortran_order and info.file_size > MAX_ROW_MAJOR_BYTES:
            raise LatentFileError(f"{self.path} stores {list(shape)} latents row-major, which cannot be read in blocks; "
                                  "re-encode it with same-edge")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self._frame_major = fortran_order

    def _scalar(self, key: str) -> np.ndarray:
        info = self._zip.getinfo(f"{key}.npy")
        if info.file_size > MAX_SCALAR_MEMBER_BYTES:
            raise ValueError(f"header field {key} is {info.file_size} bytes: not a scalar")
        with self._zip.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """The latents in order, ``frames`` frames at a time (the last block may be shorter)."""
        dim, total = self.shape
        try:
            with self._zip.open(LATENTS_MEMBER) as f:
                f.seek(self._data_offset)
                if not self._frame_major:  # written row-major (np.savez): no block structure to stream
                    raw = f.read(dim * total * 4)
                    if len(raw) != dim * total * 4:
                        raise EOFError("latents are truncated")
                    whole = np.frombuffer(raw, "<f4").reshape(dim, total)
                    for start in range(0, total, frames):
                        yield self._checked(np.ascontiguousarray(whole[:, start : start + frames]))
                    return
                for start in range(0, total, frames):
                    k = min(frames, total - start)
                    raw = f.read(k * dim * 4)
                    if len(raw) != k * dim * 4:
                        raise EOFError("latents are truncated")
                    yield self._checked(np.frombuffer(raw, "<f4").reshape(k, dim).T.astype(np.float32, order="C"))
        except _ZIP_ERRORS as e:
            if isinstance(e, LatentFileError):
                raise
            raise LatentFileError(f"{self.path} is not a same-edge latent file ({type(e).__name__}: {e})") from None

    def _checked(self, block: np.ndarray) -> np.ndarray:
        if not np.isfinite(block).all():
            raise LatentFileError(f"{self.path} holds malformed latents (NaN or Inf)")
        return block

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> LatentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
