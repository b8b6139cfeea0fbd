"""The output formats' rules: ``.npy`` frames written a block at a time, and Stable Audio 3's frame
count, padding mask and file-name constraints (``--format sa3``)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..atomic import AtomicPath
from .ledger import own_prefix

SA3_DEFAULT_SAMPLE_SIZE = 12582912  # scripts/pre_encode_dataset.py's default --sample_size (3072 SAME frames)



class NpyFramesWriter:
    """Write a float32 ``.npy`` of shape ``(*lead, frames)`` a block of frames at a time, atomically.

    The array is stored frame-major (``fortran_order``: each frame's values contiguous), so blocks
    append; the header, written first with 0 frames, is rewritten with the count at close (npy
    pads headers to 64 bytes, so its length does not change).
    """

    def __init__(self, path: Path, lead: tuple[int, ...], tag: str) -> None:
        self.path, self.lead, self.frames = path, lead, 0
        self._out = AtomicPath(path, own_prefix(tag))
        self._file = open(self._out.path, "wb")  # noqa: SIM115 (closed in close/abort)
        self._header_len = self._write_header()

    def _write_header(self) -> int:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": True, "shape": (*self.lead, self.frames)})
        self._file.seek(0)
        self._file.write(buf.getvalue())
        self._file.seek(0, os.SEEK_END)
        return len(buf.getvalue())

    def write(self, z: np.ndarray) -> None:
        """Append ``[latent_dim, k]`` float32 frames."""
        self._file.write(np.ascontiguousarray(z.T, dtype="<f4").tobytes())
        self.frames += z.shape[1]

    def close(self) -> None:
        """Finish the header and move the file into place."""
        try:
            if self._write_header() != self._header_len:
                raise RuntimeError("npy header changed length")
            self._file.close()
        except BaseException:
            self.abort()
            raise
        self._out.commit()

    def abort(self) -> None:
        """Discard the file: nothing appears at ``path``."""
        self._file.close()
        self._out.discard()



def sa3_frames(samples: int, chunk: int, hop: int) -> int:
    """The latent frames SA3's encoder returns for ``samples`` of audio: it zero-pads to whole attention
    chunks and keeps every frame (``ceil(samples / hop)`` rounded up to whole chunks: 50 for 49)."""
    return -(-samples // chunk) * (chunk // hop)



def padding_mask(valid: int, encoded: int, frames: int) -> list[int]:
    """SA3's padding mask at latent rate: its sample mask (1 for the ``valid`` samples of audio, 0 for
    padding, ``encoded`` in all) resized to ``frames`` by nearest-neighbour interpolation
    (``torch.nn.functional.interpolate(mode="nearest")``: frame i takes sample ``i * encoded // frames``)."""
    return [1 if i * encoded // frames < valid else 0 for i in range(frames)]



def sa3_name_problem(out_path: str, out_rel: str) -> str | None:
    """Why SA3's loader would not find this output (``out_path`` absolute, ``out_rel`` as listed in
    filelist.txt), or None. It reads filelist.txt as text in the locale's encoding, one line per
    sample, strips each line, and finds the .json by replacing '.npy' in the whole path."""
    if out_path.count(".npy") != 1:
        return "its path contains '.npy', which SA3's loader replaces to find the .json (rename it)"
    try:
        out_rel.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8, so SA3 cannot read it from filelist.txt (rename it)"
    if "\n" in out_rel or "\r" in out_rel:
        return "its name holds a line break, which would split its line of filelist.txt in two (rename it)"
    if out_rel != out_rel.strip():
        return "its name begins with whitespace, which SA3 strips from each line of filelist.txt (rename it)"
    return None
