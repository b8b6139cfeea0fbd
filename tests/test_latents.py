"""Latent files: written and read a block of frames at a time, atomically, with the header decoding needs."""

import zipfile

import numpy as np
import pytest

from same_edge.latents import (
    LATENTS_MEMBER,
    LatentFileError,
    LatentHeader,
    LatentReader,
    LatentWriter,
    load_latents,
    save_latents,
)

HEADER = LatentHeader(sample_rate=44100, length=40000, model_id="cfg-ckpt", source_rate=48000)


def _latents(frames=10, dim=8, seed=0):
    return np.random.default_rng(seed).normal(size=(dim, frames)).astype(np.float32)


def test_blocks_written_in_pieces_read_back_in_other_pieces_unchanged(tmp_path):
    z = _latents(frames=23)
    with LatentWriter(tmp_path / "z.npz", latent_dim=8) as w:
        for start in (0, 1, 8, 20):
            w.write(z[:, start : {0: 1, 1: 8, 8: 20, 20: 23}[start]])
        w.header = HEADER
    with LatentReader(tmp_path / "z.npz") as r:
        assert r.shape == (8, 23) and r.header == HEADER
        blocks = list(r.blocks(5))
    assert [b.shape[1] for b in blocks] == [5, 5, 5, 5, 3]
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in blocks)
    assert np.array_equal(np.concatenate(blocks, axis=1), z)


def test_frames_are_stored_contiguously_and_uncompressed_so_that_files_stream(tmp_path):
    save_latents(tmp_path / "z.npz", _latents(), HEADER)
    with zipfile.ZipFile(tmp_path / "z.npz") as zf:
        assert zf.getinfo(LATENTS_MEMBER).compress_type == zipfile.ZIP_STORED
    with np.load(tmp_path / "z.npz") as f:  # still an ordinary .npz
        assert f["latents"].flags.f_contiguous and f["latents"].shape == (8, 10)
        assert int(f["length"]) == HEADER.length and str(f["model_id"]) == HEADER.model_id


def test_row_major_files_written_by_numpy_savez_are_read_too(tmp_path):
    z = _latents()
    np.savez(tmp_path / "z.npz", latents=z, sample_rate=np.int64(44100), length=np.int64(40000),
             model_id=np.str_("cfg-ckpt"), source_rate=np.int64(48000))
    lf = load_latents(tmp_path / "z.npz")
    assert np.array_equal(lf.latents, z) and lf.header == HEADER


def test_a_failed_write_leaves_no_file_behind(tmp_path):
    with pytest.raises(RuntimeError), LatentWriter(tmp_path / "z.npz", latent_dim=8) as w:
        w.write(_latents())
        raise RuntimeError("encoder failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "nan", "not_a_zip"])
def test_damaged_files_are_refused_with_a_latent_file_error(tmp_path, damage):
    z = _latents()
    if damage == "nan":
        z[3, 4] = np.nan
    save_latents(tmp_path / "z.npz", z, HEADER)
    if damage == "truncated":  # the frames cut short inside the archive
        with zipfile.ZipFile(tmp_path / "z.npz") as zf:
            members = {i.filename: zf.read(i) for i in zf.infolist()}
        members[LATENTS_MEMBER] = members[LATENTS_MEMBER][:-100]
        with zipfile.ZipFile(tmp_path / "z.npz", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    elif damage == "not_a_zip":
        (tmp_path / "z.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(LatentFileError):
        load_latents(tmp_path / "z.npz")
