"""Latent files: written and read a block of frames at a time, atomically, with the header decoding needs."""

import io
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

from same_edge.latents import (
    FORMAT_VERSION,
    LATENTS_MEMBER,
    VERSION_MEMBER,
    LatentFile,
    LatentFileError,
    LatentHeader,
    LatentReader,
    LatentWriter,
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
    LatentFile(_latents(), HEADER).save(tmp_path / "z.npz")
    with zipfile.ZipFile(tmp_path / "z.npz") as zf:
        assert zf.getinfo(LATENTS_MEMBER).compress_type == zipfile.ZIP_STORED
    with np.load(tmp_path / "z.npz") as f:  # still an ordinary .npz
        assert f["latents"].flags.f_contiguous and f["latents"].shape == (8, 10)
        assert int(f["length"]) == HEADER.length and str(f["model_id"]) == HEADER.model_id


def test_row_major_files_written_by_numpy_savez_are_read_too(tmp_path):
    z = _latents()
    np.savez(tmp_path / "z.npz", latents=z, sample_rate=np.int64(44100), length=np.int64(40000),
             model_id=np.str_("cfg-ckpt"), source_rate=np.int64(48000))
    lf = LatentFile.load(tmp_path / "z.npz")
    assert np.array_equal(lf.latents, z) and lf.header == HEADER


def test_a_failed_write_leaves_no_file_behind(tmp_path):
    with pytest.raises(RuntimeError), LatentWriter(tmp_path / "z.npz", latent_dim=8) as w:
        w.write(_latents())
        raise RuntimeError("encoder failed")
    assert list(tmp_path.iterdir()) == []


def test_frames_go_straight_into_the_one_temporary_file_so_a_file_needs_its_own_size_on_disk_once(tmp_path):
    blocks = [_latents(frames=1000, seed=i) for i in range(10)]
    with LatentWriter(tmp_path / "z.npz", latent_dim=8) as w:
        for block in blocks:
            w.write(block)
        written = list(tmp_path.iterdir())
        assert len(written) == 1 and written[0].stat().st_size >= 8 * 10_000 * 4  # no second copy anywhere
        w.header = HEADER
    assert [p.name for p in tmp_path.iterdir()] == ["z.npz"]
    np.testing.assert_array_equal(LatentFile.load(tmp_path / "z.npz").latents, np.concatenate(blocks, axis=1))
    with zipfile.ZipFile(tmp_path / "z.npz") as zf:
        assert zf.testzip() is None  # every member's CRC holds
    assert np.load(tmp_path / "z.npz")["latents"].shape == (8, 10_000)


@pytest.mark.parametrize("damage", ["truncated", "nan", "not_a_zip"])
def test_damaged_files_are_refused_with_a_latent_file_error(tmp_path, damage):
    z = _latents()
    if damage == "nan":
        z[3, 4] = np.nan
    LatentFile(z, HEADER).save(tmp_path / "z.npz")
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
        LatentFile.load(tmp_path / "z.npz")


@pytest.mark.parametrize("version", [(3, 0), (9, 0), (0, 1)])
def test_a_latents_member_of_an_unsupported_npy_version_is_refused(tmp_path, version):
    LatentFile(_latents(), HEADER).save(tmp_path / "z.npz")
    with zipfile.ZipFile(tmp_path / "z.npz") as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    member = bytearray(members[LATENTS_MEMBER])
    member[6:8] = bytes(version)  # after the \x93NUMPY magic: major, minor
    members[LATENTS_MEMBER] = bytes(member)
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(LatentFileError, match=re.escape(f"unsupported .npy version {version}")):
        LatentFile.load(tmp_path / "z.npz")


# -- decompression bombs: a small file that inflates to far more than it holds ----------------------

BOMB_DIM, BOMB_FRAMES = 256, 500_000  # 512 MB of float32 latents that deflate to about 0.5 MB


def _deflated_latent_file(path, dim, frames, declared_frames=None):
    """A latent file whose latents member (zeros, frame-major) is ZIP_DEFLATED, written a megabyte at
    a time; its .npy header declares ``declared_frames`` (default: what it holds)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(LATENTS_MEMBER, "w", force_zip64=True) as member:
            header = {"descr": "<f4", "fortran_order": True, "shape": (dim, declared_frames or frames)}
            np.lib.format.write_array_header_2_0(member, header)
            zeros, left = bytes(1 << 20), dim * frames * 4
            while left:
                member.write(zeros[: min(left, len(zeros))])
                left -= min(left, len(zeros))
        hop = 4096
        for key, value in (("sample_rate", 44100), ("length", frames * hop), ("model_id", "cfg-ckpt"),
                           ("source_rate", 44100)):
            with zf.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, np.asarray(value))
    return path


def test_a_deflated_latent_member_of_512_mb_is_read_a_block_at_a_time_in_flat_memory(tmp_path):

    path = _deflated_latent_file(tmp_path / "bomb.npz", BOMB_DIM, BOMB_FRAMES)
    assert path.stat().st_size < 1_000_000  # 0.5 MB on disk
    tracemalloc.start()
    try:
        frames = 0
        with LatentReader(path) as r:
            assert r.shape == (BOMB_DIM, BOMB_FRAMES)
            for block in r.blocks(1024):  # 1 MB blocks
                frames += block.shape[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert frames == BOMB_FRAMES
    assert peak < 50e6, f"reading 512 MB of deflated latents in blocks peaked at {peak / 1e6:.0f} MB"


def test_a_deflated_member_holding_more_frames_than_its_header_declares_is_refused_before_inflating(tmp_path):
    path = _deflated_latent_file(tmp_path / "bomb.npz", BOMB_DIM, BOMB_FRAMES // 10, declared_frames=1000)
    tracemalloc.start()
    try:
        with pytest.raises(LatentFileError, match="holds .* bytes where its header declares"):
            LatentReader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6, f"refusing a member of 51 MB inflated peaked at {peak / 1e6:.0f} MB"  # nothing is inflated


def _patch_stored_size(path, member, size):
    """Make the zip directory (central and local headers) claim ``size`` uncompressed bytes for ``member``."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(member).header_offset
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    for offset in (local + 22, central + 24):
        data[offset : offset + 4] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("holds", ["fewer", "more"])
def test_a_member_whose_zip_directory_misstates_its_inflated_size_is_refused(tmp_path, holds):
    """The directory and the .npy header agree on 2000 frames; the deflate stream holds 1000 or 3000."""
    dim, declared = 16, 2000
    path = _deflated_latent_file(tmp_path / "z.npz", dim, 1000 if holds == "fewer" else 3000, declared_frames=declared)
    with zipfile.ZipFile(path) as zf:
        header_bytes = zf.getinfo(LATENTS_MEMBER).file_size - (1000 if holds == "fewer" else 3000) * dim * 4
    _patch_stored_size(path, LATENTS_MEMBER, header_bytes + declared * dim * 4)
    with pytest.raises(LatentFileError), LatentReader(path) as r:
        for _ in r.blocks(100):
            pass
    with pytest.raises(LatentFileError):
        LatentFile.load(path)


def test_the_same_latents_give_the_same_file_byte_for_byte(tmp_path):
    import time

    LatentFile(_latents(), HEADER).save(tmp_path / "a.npz")
    time.sleep(2.1)  # the zip format stores times in 2-second steps
    LatentFile(_latents(), HEADER).save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_a_latent_file_states_its_format_version_and_a_newer_one_is_refused_by_name(tmp_path):
    LatentFile(_latents(), HEADER).save(tmp_path / "z.npz")
    with zipfile.ZipFile(tmp_path / "z.npz") as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    assert np.load(tmp_path / "z.npz")["format_version"] == FORMAT_VERSION == 1
    newer = io.BytesIO()
    np.save(newer, np.int64(FORMAT_VERSION + 1))
    with zipfile.ZipFile(tmp_path / "newer.npz", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, newer.getvalue() if name == VERSION_MEMBER else data)
    with pytest.raises(LatentFileError, match="format version 2, written by a newer same-edge; this one reads versions up to 1"):
        LatentFile.load(tmp_path / "newer.npz")
    # A file from before the field (the same layout without it) is version 1.
    with zipfile.ZipFile(tmp_path / "older.npz", "w") as zf:
        for name, data in members.items():
            if name != VERSION_MEMBER:
                zf.writestr(name, data)
    with LatentReader(tmp_path / "older.npz") as r:
        assert r.format_version == 1 and r.header == HEADER


def test_a_latent_file_round_trips_through_bytes_as_it_does_through_a_file(tmp_path):
    lf = LatentFile(_latents(), HEADER)
    lf.save(tmp_path / "z.npz")
    data = lf.to_bytes()
    assert data == (tmp_path / "z.npz").read_bytes()
    back = LatentFile.from_bytes(data)
    assert np.array_equal(back.latents, lf.latents) and back.header == HEADER
