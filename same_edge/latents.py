"""Latent files (``.npz``): the latents with what decoding needs to give back the exact input.

The latents are stored frame-major (``fortran_order`` in the ``.npy`` header: each frame's
``latent_dim`` values are contiguous) and uncompressed, so a file is written and read a block of
frames at a time: encoding and decoding an hour of audio hold a block, not the hour.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .atomic import publish, temp_beside

LATENTS_MEMBER = "latents.npy"


class LatentFileError(ValueError):
    """A latent file is unreadable or does not belong to this model."""


@dataclass(frozen=True)
class LatentHeader:
    sample_rate: int  # Hz of the audio the latents were encoded from (the model's rate)
    length: int  # samples of that audio, so that decoding trims to the exact input length
    model_id: str  # Manifest.model_id of the model that encoded them
    source_rate: int  # Hz of the original file, for decoding back at that rate (--keep-rate)


@dataclass(frozen=True)
class LatentFile:
    latents: np.ndarray  # [latent_dim, L] float32
    sample_rate: int
    length: int
    model_id: str
    source_rate: int

    @property
    def header(self) -> LatentHeader:
        return LatentHeader(self.sample_rate, self.length, self.model_id, self.source_rate)


class LatentWriter:
    """Write a latent file frame block by frame block; it appears, whole, only on ``close``.

    >>> with LatentWriter(path, latent_dim=256) as w:
    ...     w.write(z)                 # [latent_dim, k] float32, any k, as many times as needed
    ...     w.header = LatentHeader(...)
    """

    def __init__(self, path: str | Path, latent_dim: int) -> None:
        self.path = Path(path)
        if self.path.suffix != ".npz":
            raise LatentFileError(f"latent files are .npz, got {self.path.name}")
        self.latent_dim = latent_dim
        self.frames = 0
        self.header: LatentHeader | None = None
        self._frames_tmp = temp_beside(self.path.with_suffix(".frames"))
        self._frames = open(self._frames_tmp, "wb")  # noqa: SIM115 (closed in close/abort)

    def write(self, z: np.ndarray) -> None:
        """Append frames: ``[latent_dim, k]`` float32."""
        if z.ndim != 2 or z.shape[0] != self.latent_dim:
            raise ValueError(f"latents must have shape [{self.latent_dim}, k], got {list(z.shape)}")
        self._frames.write(np.ascontiguousarray(z.T, dtype="<f4").tobytes())
        self.frames += z.shape[1]

    def close(self) -> None:
        """Assemble the ``.npz`` (needs ``header``) and move it into place."""
        if self.header is None:
            self.abort()
            raise ValueError("LatentWriter.header must be set before close")
        self._frames.close()
        tmp = temp_beside(self.path)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                with zf.open(LATENTS_MEMBER, "w", force_zip64=True) as member, open(self._frames_tmp, "rb") as frames:
                    header = {"descr": "<f4", "fortran_order": True, "shape": (self.latent_dim, self.frames)}
                    np.lib.format.write_array_header_2_0(member, header)
                    shutil.copyfileobj(frames, member, 1 << 20)
                for key, value in asdict(self.header).items():
                    with zf.open(f"{key}.npy", "w") as member:
                        np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            publish(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            Path(self._frames_tmp).unlink(missing_ok=True)

    def abort(self) -> None:
        """Discard what was written; no file appears."""
        self._frames.close()
        Path(self._frames_tmp).unlink(missing_ok=True)

    def __enter__(self) -> LatentWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


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
            values = {f.name: self._scalar(f.name) for f in fields(LatentHeader)}
            self.header = LatentHeader(int(values["sample_rate"]), int(values["length"]), str(values["model_id"]),
                                       int(values["source_rate"]))
            with self._zip.open(LATENTS_MEMBER) as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy version {version}")
                shape, fortran_order, dtype = read_header(f)
                self._data_offset = f.tell()
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            raise LatentFileError(f"{self.path} is not a same-edge latent file ({e})") from None
        if len(shape) != 2 or dtype != np.dtype("<f4"):
            raise LatentFileError(f"{self.path} holds malformed latents")
        h = self.header
        if h.length < 1 or h.sample_rate <= 0 or h.source_rate <= 0:
            raise LatentFileError(f"{self.path} has an inconsistent header")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self._frame_major = fortran_order

    def _scalar(self, key: str) -> np.ndarray:
        with self._zip.open(f"{key}.npy") as f:
            return np.lib.format.read_array(f, allow_pickle=False)

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """The latents in order, ``frames`` frames at a time (the last block may be shorter)."""
        dim, total = self.shape
        try:
            with self._zip.open(LATENTS_MEMBER) as f:
                if not self._frame_major:  # written row-major (np.savez): no block structure to stream
                    f.seek(self._data_offset)
                    whole = np.frombuffer(f.read(), "<f4")
                    if whole.size != dim * total:
                        raise EOFError("latents are truncated")
                    whole = whole.reshape(dim, total)
                    for start in range(0, total, frames):
                        yield self._checked(np.ascontiguousarray(whole[:, start : start + frames]))
                    return
                f.seek(self._data_offset)
                for start in range(0, total, frames):
                    k = min(frames, total - start)
                    raw = f.read(k * dim * 4)
                    if len(raw) != k * dim * 4:
                        raise EOFError("latents are truncated")
                    yield self._checked(np.frombuffer(raw, "<f4").reshape(k, dim).T.astype(np.float32, order="C"))
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            if isinstance(e, LatentFileError):
                raise
            raise LatentFileError(f"{self.path} is not a same-edge latent file ({e})") from None

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


def save_latents(path: str | Path, lf: LatentFile) -> None:
    """Write a latent file atomically."""
    with LatentWriter(path, lf.latents.shape[0] if lf.latents.ndim == 2 else -1) as w:
        w.write(lf.latents.astype(np.float32))
        w.header = lf.header


def load_latents(path: str | Path) -> LatentFile:
    """Read a whole latent file: ``latents`` is ``[latent_dim, L]`` float32."""
    with LatentReader(path) as r:
        dim, total = r.shape
        latents = np.concatenate([np.zeros((dim, 0), np.float32), *r.blocks(max(total, 1))], axis=1)
        h = r.header
    return LatentFile(latents, h.sample_rate, h.length, h.model_id, h.source_rate)
