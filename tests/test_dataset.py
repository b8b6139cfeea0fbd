"""``same-edge encode-dataset`` in local mode: what it writes (same-edge and Stable Audio 3 layouts,
read back the way SA3's PreEncodedDataset reads them), resume, faults (bad files, dead workers,
kill -9, SIGTERM, Ctrl-C, a full disk) and every bad invocation (one line, exit 2, nothing written)."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dataset_faults import Faults, use_by_default
from same_edge import Codec
from same_edge.audio import AudioReader
from same_edge.dataset import (
    FILELIST,
    INDEX,
    MARKER,
    RUNNING,
    SA3_DEFAULT_SAMPLE_SIZE,
    SILENCE,
    DatasetOptions,
    audio_extensions,
    encode_dataset,
    padding_mask,
)
from same_edge.errors import Terminated
from same_edge.latents import LatentFile

SR = 44100
REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "models" / "demo"


@pytest.fixture(scope="module")
def model(export_dir) -> Path:
    return export_dir("fp32")


@pytest.fixture(scope="module")
def codec(model) -> Codec:
    return Codec.load(model, threads=1, sides=("encoder",))


def _music(seconds: float, sr: int = SR, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (110 + 40 * seed) * t) * np.exp(-(t % 0.4) * 5) + 0.03 * rng.normal(size=t.size)
    return np.stack([x * (0.7 + 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def _library(root: Path, n: int = 4, bad: bool = False) -> list[Path]:
    """n short music files in a small tree (two formats, one other rate, one mono), plus bad ones."""
    files = []
    for i in range(n):
        sub = root / ("a" if i % 2 else "b") / ("deep" if i == 3 else "")
        sub.mkdir(parents=True, exist_ok=True)
        sr = 32000 if i == 1 else SR
        ext = ".FLAC" if i == 2 else (".wav" if i % 2 else ".flac")
        p = sub / f"song{i}{ext}"
        sf.write(p, _music(0.6 + 0.35 * i, sr, channels=1 if i == 3 else 2, seed=i), sr)
        files.append(p)
    (root / "b" / "notes.md").write_text("not audio, and not named like audio: ignored\n")
    (root / "b" / ".hidden.wav").write_bytes(b"an editor's dropping: hidden files are skipped")
    if bad:
        (root / "b" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage, not a wave file")
        (root / "b" / "empty.flac").write_bytes(b"")
        (root / "b" / "text.mp3").write_text("plain text with an audio name\n")
    return files


def _run(capsys, *argv) -> tuple[int, str, str]:
    """``same-edge encode-dataset ARGV`` in process: its exit status, stdout and stderr."""
    from same_edge.cli import main

    try:
        rc = main(["encode-dataset", *(str(a) for a in argv)])
    except SystemExit as stop:  # argparse's usage errors
        rc = stop.code
    out, err = capsys.readouterr()
    return rc, out, err


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _reference(codec: Codec, path: Path, samples: int | None = None, pad_to: int | None = None) -> np.ndarray:
    audio = AudioReader(path, codec.sample_rate, codec.channels).read_all()
    if samples is not None:
        audio = audio[:, :samples]
    if pad_to is not None and audio.shape[1] < pad_to:
        audio = np.concatenate([audio, np.zeros((audio.shape[0], pad_to - audio.shape[1]), np.float32)], axis=1)
    return codec.encode(np.ascontiguousarray(audio))


# ----------------------------------------------------------------------------------------------
# same-edge format, resume


def test_encodes_every_audio_file_into_a_mirrored_tree_of_latent_files_equal_to_codec_encode(tmp_path, model, codec):
    files = _library(tmp_path / "in")
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=2, threads=1, progress=False))
    assert (s.files, s.encoded, s.skipped, s.failed, s.interrupted) == (4, 4, 0, 0, False) and s.ok
    outs = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.npz"))
    assert outs == sorted(p.relative_to(tmp_path / "in").as_posix() + ".npz" for p in files)
    total = 0.0
    for p in files:
        lf = LatentFile.load(tmp_path / "out" / (p.relative_to(tmp_path / "in").as_posix() + ".npz"))
        info = sf.info(p)
        h = lf.header
        assert h.model_id == codec.manifest.model_id and h.source_rate == info.samplerate
        assert h.length == pytest.approx(info.frames * SR / info.samplerate, abs=2)
        np.testing.assert_allclose(lf.latents, _reference(codec, p), rtol=1e-4, atol=1e-5)
        total += h.length / SR
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["model_id"] == codec.manifest.model_id and summary["precision"] == "fp32"
    assert summary["encoded"] == 4 and summary["failed"] == 0 and summary["audio_seconds"] == pytest.approx(total, abs=1e-3)
    assert summary["audio_hours"] == pytest.approx(total / 3600, abs=1e-4)
    assert summary["x_real_time"] > 0 and summary["wall_seconds"] > 0 and summary["peak_rss_mb"] > 0
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""


def test_a_rerun_skips_what_is_up_to_date_and_redoes_changed_sources_only(tmp_path, model):
    files = _library(tmp_path / "in")
    encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    before = _tree(tmp_path / "out")
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    assert (s.encoded, s.skipped, s.failed) == (0, 4, 0)
    assert {k: v for k, v in _tree(tmp_path / "out").items() if k.endswith(".npz")} == \
        {k: v for k, v in before.items() if k.endswith(".npz")}
    sf.write(files[0], _music(1.5, seed=9), SR)  # changed content (size and mtime)
    (tmp_path / "out" / (files[2].relative_to(tmp_path / "in").as_posix() + ".npz")).unlink()  # an output lost
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    assert (s.encoded, s.skipped) == (2, 2)
    changed = LatentFile.load(tmp_path / "out" / (files[0].relative_to(tmp_path / "in").as_posix() + ".npz"))
    assert changed.header.length == int(1.5 * SR)


def test_verify_judges_sources_by_content_hash_so_a_touched_file_is_not_reencoded(tmp_path, model):
    files = _library(tmp_path / "in", n=2)
    encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    os.utime(files[0], ns=(time.time_ns(), time.time_ns() + 10**9))  # same bytes, new mtime (a copied library)
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(
        model=model, workers=1, threads=1, verify=True, progress=False))
    assert (s.encoded, s.skipped) == (0, 2)
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    assert (s.encoded, s.skipped) == (0, 2)  # --verify refreshed the record's mtime
    data, sr = sf.read(files[1], dtype="float32")
    sf.write(files[1], -data, sr)  # same size, new content
    os.utime(files[1], ns=(0, os.stat(files[0]).st_mtime_ns))
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(
        model=model, workers=1, threads=1, verify=True, progress=False))
    assert (s.encoded, s.skipped) == (1, 1)


def test_a_source_rewritten_at_the_same_size_with_a_new_mtime_is_reencoded_without_verify(tmp_path, model, codec):
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "song.wav"
    sf.write(src, _music(0.5), SR, subtype="PCM_16")
    encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    before = os.stat(src)
    sf.write(src, _music(0.5, seed=5), SR, subtype="PCM_16")  # new content, the same size
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert os.stat(src).st_size == before.st_size
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    assert (s.encoded, s.skipped) == (1, 0)
    np.testing.assert_allclose(LatentFile.load(tmp_path / "out" / "song.wav.npz").latents, _reference(codec, src),
                               rtol=1e-4, atol=1e-5)


def test_a_list_file_of_paths_is_encoded_mirroring_paths_relative_to_it(tmp_path, model):
    files = _library(tmp_path / "lib", n=3)
    listing = tmp_path / "lib" / "list.txt"
    listing.write_text(f"# two files\n{files[0].relative_to(tmp_path / 'lib')}\n\n{files[2]}\n")
    s = encode_dataset(listing, tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    assert (s.files, s.encoded) == (2, 2)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.npz")) == \
        sorted(p.relative_to(tmp_path / "lib").as_posix() + ".npz" for p in (files[0], files[2]))


def test_audio_extensions_come_from_libsndfile_and_match_case_insensitively(tmp_path, model):
    assert {"wav", "flac", "ogg", "mp3", "aiff"} <= audio_extensions() and "mat" not in audio_extensions()
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "LOUD.WAV", _music(0.3), SR)
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    assert s.encoded == 1 and (tmp_path / "out" / "LOUD.WAV.npz").is_file()


def test_progress_bar_shows_files_hours_speed_and_eta(tmp_path, model, capsys):
    _library(tmp_path / "in", n=2)
    rc, out, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1")
    assert rc == 0
    assert "2/2 files" in err and "h audio" in err and "x real time" in err and "<" in err  # tqdm's [elapsed<remaining]
    assert "2 encoded, 0 up to date, 0 failed of 2 files" in out


def test_the_same_edge_command_line_runs_encode_dataset_and_returns_its_exit_status(tmp_path, model, capsys):
    from same_edge.cli import main as same_edge_main

    _library(tmp_path / "in", n=2, bad=True)
    rc = same_edge_main(["encode-dataset", str(tmp_path / "in"), str(tmp_path / "out"), "--model", str(model),
                         "--workers", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 1 and "2 encoded, 0 up to date, 3 failed of 5 files" in out and "failures.jsonl" in err
    rc = same_edge_main(["encode-dataset", str(tmp_path / "nope"), str(tmp_path / "out2"), "--model", str(model)])
    _assert_refused(rc, capsys.readouterr().err, "input not found")


def test_a_file_name_that_is_not_utf8_is_encoded_and_sa3_records_why_its_filelist_cannot_hold_it(tmp_path, model, codec):
    (tmp_path / "in").mkdir()
    latin1 = tmp_path / "in" / os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name: bytes that are not UTF-8
    sf.write(os.fsencode(latin1), _music(0.4), SR)
    sf.write(tmp_path / "in" / "ok.wav", _music(0.4, seed=1), SR)
    for p in (latin1, tmp_path / "in" / "ok.wav"):
        p.with_suffix(".txt").write_text("a caption")
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    assert (s.encoded, s.failed) == (2, 0)
    z = LatentFile.load(tmp_path / "out" / (latin1.name + ".npz")).latents
    np.testing.assert_allclose(z, codec.encode(AudioReader(latin1, SR, 2).read_all()), rtol=1e-4, atol=1e-5)
    # SA3 reads filelist.txt as text in the locale's encoding (UTF-8): such a name cannot be listed.
    s = encode_dataset(tmp_path / "in", tmp_path / "sa3", DatasetOptions(model=model, workers=1, threads=1, format="sa3",
                       sample_size=8192, progress=False))
    assert (s.encoded, s.failed) == (1, 1)
    (failure,) = map(json.loads, (tmp_path / "sa3" / "failures.jsonl").read_text().splitlines())
    assert failure["relpath"] == latin1.name and "UTF-8" in failure["reason"]
    assert (tmp_path / "sa3" / FILELIST).read_text() == "ok.wav.npy\n"


# ----------------------------------------------------------------------------------------------
# Faults


def test_the_temporary_file_sweep_removes_only_its_own_temporaries_never_look_alike_user_files(tmp_path, model,
                                                                                                 monkeypatch):
    out = tmp_path / "out"
    music = out / "music"  # IN inside OUT: the sweep walks IN too
    _library(music, n=3)
    look_alikes = [out / ".backup.20240101.txt", out / ".eslintrc.defaults.json", out / "music" / "a" / ".notes.abcd1234.npy",
                   out / "b" / ".song0.flac.k3j5x9_q.npz", music / "b" / ".mix.20240101.json", out / "x" / ".old.12345678.jsonl"]
    look_alikes.append(out / "b" / ".same-edge-tmp.fedcba9876543210.k3j5x9_q.npz")  # ours by name, no run's by record
    for p in look_alikes:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("the user's own file\n")
    # A killed run's temporary files, its tag recorded (the latent writer's own beneath ours has one more dot).
    (out / RUNNING).write_text("0123456789abcdef\n")
    left = [out / "b" / ".same-edge-tmp.0123456789abcdef.a1b2c3d4.npz",
            out / "b" / "..same-edge-tmp.0123456789abcdef.a1b2c3d4.npz.e5f6g7h8.npz",
            out / ".same-edge-tmp.0123456789abcdef.x.json"]
    for p in left:
        p.write_bytes(b"half written")
    # A worker that dies makes the run sweep the temporary files such deaths leave.
    s = encode_dataset(music, out, DatasetOptions(model=model, workers=1, threads=1, overwrite=True, progress=False,
                                                  encoder=Faults(crash_on="song2.FLAC").encoder()))
    assert (s.encoded, s.failed) == (2, 1) and s.worker_restarts == 2
    assert [p.read_text() for p in look_alikes] == ["the user's own file\n"] * len(look_alikes)
    assert not any(p.exists() for p in left) and not (out / RUNNING).exists()


def test_an_unlistable_or_vanished_directory_and_a_dangling_symlink_are_failures_with_reasons(tmp_path, model,
                                                                                                monkeypatch, capsys):
    _library(tmp_path / "in", n=2)
    for d in ("locked", "gone"):
        (tmp_path / "in" / d).mkdir()
        sf.write(tmp_path / "in" / d / "x.wav", _music(0.3), SR)
    (tmp_path / "in" / "b" / "moved.flac").symlink_to(tmp_path / "elsewhere" / "moved.flac")
    (tmp_path / "in" / "b" / "loop.wav").symlink_to("loop.wav")
    real_scandir = os.scandir

    def scandir(path="."):  # as a directory without permission (tests run as root) and one deleted mid-walk
        name = os.path.basename(os.fspath(path))
        if name in ("locked", "gone"):
            code = errno.EACCES if name == "locked" else errno.ENOENT
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rc, out, _ = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet")
    assert rc == 1 and "2 encoded, 0 up to date, 4 failed of 6 files" in out
    reasons = {f["relpath"]: f["reason"] for f in map(json.loads, (tmp_path / "out" / "failures.jsonl").read_text()
                                                       .splitlines())}
    assert sorted(reasons) == ["b/loop.wav", "b/moved.flac", "gone", "locked"]
    assert "cannot list" in reasons["locked"] and "Permission denied" in reasons["locked"]
    assert "cannot list" in reasons["gone"] and "No such file or directory" in reasons["gone"]
    assert "symbolic link" in reasons["b/moved.flac"] and str(tmp_path / "elsewhere") in reasons["b/moved.flac"]
    assert "symbolic link" in reasons["b/loop.wav"] and "Too many levels of symbolic links" in reasons["b/loop.wav"]
    rc, _, err = _run(capsys, tmp_path / "in" / "locked", tmp_path / "out2", "--model", model)  # IN itself
    _assert_refused(rc, err, "cannot list this directory: PermissionError: Permission denied")
    assert not (tmp_path / "out2").exists()


def test_corrupt_empty_and_non_audio_files_are_recorded_with_reasons_and_the_run_goes_on(tmp_path, model, capsys):
    _library(tmp_path / "in", n=3, bad=True)
    rc, out, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "2", "--quiet")
    assert rc == 1  # some files failed
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert sorted(f["relpath"] for f in failures) == ["b/corrupt.wav", "b/empty.flac", "b/text.mp3"]
    reasons = {f["relpath"]: f["reason"] for f in failures}
    assert "empty" in reasons["b/empty.flac"] and "cannot read" in reasons["b/text.mp3"]
    assert all(f["file"] == str(tmp_path / "in" / f["relpath"]) and f["attempts"] == 1 for f in failures)
    assert len(list((tmp_path / "out").rglob("*.npz"))) == 3
    assert "3 encoded, 0 up to date, 3 failed of 6 files" in out and "failures.jsonl" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["encoded"], summary["failed"]) == (3, 3)
    # A re-run tries the failed files again (they may have been fixed) and records this run's failures only.
    (tmp_path / "in" / "b" / "empty.flac").unlink()
    rc, out, _ = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet")
    assert rc == 1 and "0 encoded, 3 up to date, 2 failed of 5 files" in out
    assert len((tmp_path / "out" / "failures.jsonl").read_text().splitlines()) == 2


def test_a_file_that_kills_its_worker_is_recorded_and_the_worker_replaced(tmp_path, model, monkeypatch):
    _library(tmp_path / "in", n=4)
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(
        model=model, workers=2, threads=1, progress=False, encoder=Faults(crash_on="song2.FLAC").encoder()))
    assert (s.encoded, s.failed) == (3, 1) and s.worker_restarts == 2
    (failure,) = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert failure["relpath"] == "b/song2.FLAC" and failure["attempts"] == 2
    assert "worker process died (killed by signal SIGKILL)" in failure["reason"]
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.suffix in (".npz", ".frames")]  # no temporary files


def test_a_worker_killed_mid_job_loses_nothing_its_file_is_redone(tmp_path, model, monkeypatch):
    _library(tmp_path / "in", n=4)
    encode_dataset(tmp_path / "in", tmp_path / "clean", DatasetOptions(model=model, workers=2, threads=1, progress=False))
    faults = Faults(crash_once_on="song1.wav", once_dir=str(tmp_path))
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(
        model=model, workers=2, threads=1, progress=False, encoder=faults.encoder()))
    assert (s.encoded, s.failed, s.worker_restarts) == (4, 0, 1)
    assert (tmp_path / "crashed-song1.wav").exists()
    for rel in (p.relative_to(tmp_path / "clean") for p in (tmp_path / "clean").rglob("*.npz")):
        a, b = LatentFile.load(tmp_path / "clean" / rel), LatentFile.load(tmp_path / "out" / rel)
        assert np.array_equal(a.latents, b.latents) and a.header == b.header


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _wait_gone(pids: list[int], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while any(Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text() for p in pids):
        assert time.monotonic() < end, "orphaned workers did not exit"
        time.sleep(0.1)


# The command line, its workers slowed down (sys.argv[1]: seconds a file).
_SLOW_COMMAND = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from dataset_faults import Faults
import same_edge.dataset.run as coordinator
coordinator.Encoder = Faults(slow_s=float(sys.argv.pop(1))).encoder()
from same_edge.cli import run
run()
"""


def _start_slow_run(tmp_path: Path, model: Path, slow: float) -> subprocess.Popen:
    # A job started in the background by a shell inherits SIGINT ignored (and Python keeps it so):
    # give the child the default disposition, as a terminal's foreground job has.
    return subprocess.Popen([sys.executable, "-c", _SLOW_COMMAND, str(slow), "encode-dataset", str(tmp_path / "in"),
                             str(tmp_path / "out"), "--model", str(model), "--workers", "1", "--threads", "1", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_records(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not ((out / INDEX).is_file() and len((out / INDEX).read_text().splitlines()) >= n):
        assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.05)


def test_kill_9_of_the_coordinator_loses_nothing_written_and_the_next_run_finishes_the_rest(tmp_path, model, capsys):
    _library(tmp_path / "in", n=6)
    proc = _start_slow_run(tmp_path, model, slow=0.4)
    _wait_records(tmp_path / "out", 2, proc)
    workers = _children(proc.pid)
    proc.kill()
    proc.wait()
    _wait_gone(workers)  # orphaned workers notice and leave
    done = len((tmp_path / "out" / INDEX).read_text().splitlines())
    assert 2 <= done < 6
    rc, out, _ = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet")
    assert rc == 0
    encoded = int(out.split(":")[1].split()[0])
    assert encoded <= 6 - done + 1  # at most the file in flight at the kill is redone besides the rest
    assert len(list((tmp_path / "out").rglob("*.npz"))) == 6
    for p in (tmp_path / "out").rglob("*.npz"):
        assert LatentFile.load(p).latents.shape[1] > 0
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.name not in (MARKER, INDEX, ".same-edge-lock")]


@pytest.mark.parametrize("sig, code, message", [
    (signal.SIGTERM, 143, "stopped by SIGTERM"), (signal.SIGINT, 130, "interrupted")], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_and_ctrl_c_stop_cleanly_and_the_next_run_finishes_the_rest(tmp_path, model, capsys, sig, code, message):
    _library(tmp_path / "in", n=6)
    proc = _start_slow_run(tmp_path, model, slow=0.4)
    _wait_records(tmp_path / "out", 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and err.strip().splitlines() == [f"same-edge: {message}; a re-run finishes the rest"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True and 2 <= summary["encoded"] < 6
    rc, out, _ = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet")
    assert rc == 0 and f"{6 - summary['encoded']} encoded, {summary['encoded']} up to date" in out
    assert not [p for p in (tmp_path / "out").rglob(".*") if p.name not in (MARKER, INDEX, ".same-edge-lock")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_signal_between_recording_an_output_and_counting_it_is_held_until_both_are_done(tmp_path, model, monkeypatch,
                                                                                          request, sig):
    """The race a loaded machine showed: a signal landing just after an output's index line was
    written left it out of the summary's count (the re-run then disagreed with the summary)."""
    from same_edge.dataset import run

    _library(tmp_path / "in", n=3)
    record = run.Run._record
    # Python's own Ctrl-C handler, as in a terminal: a runner started in the background by a shell
    # (`make test &`) inherits SIGINT ignored, and the run rightly leaves an ignored signal alone.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, inherited))

    def record_then_signal(self, rec):
        record(self, rec)
        signal.raise_signal(sig)  # delivered at once, were it not held

    monkeypatch.setattr(run.Run, "_record", record_then_signal)
    with pytest.raises((KeyboardInterrupt, Terminated)):
        encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, progress=False))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["encoded"] == len((tmp_path / "out" / INDEX).read_text().splitlines()) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers as they were


def test_a_full_disk_stops_the_run_with_exit_2_keeping_what_was_written_resumable(tmp_path, model, capsys, monkeypatch):
    files = _library(tmp_path / "in", n=4)
    # Walk order: a/song1.wav, a/deep/song3.wav, b/song0.flac, b/song2.FLAC; the disk fills on the third.
    with monkeypatch.context() as patched:
        use_by_default(patched, Faults(enospc_on="song0.flac"))
        rc, out, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "No space left on device" in err and "re-run" in err
    assert out == ""
    written = sorted(p.name for p in (tmp_path / "out").rglob("*.npz"))
    # The files before it are kept; the one already queued behind it may have been written too.
    assert written in (["song1.wav.npz", "song3.wav.npz"], ["song1.wav.npz", "song2.FLAC.npz", "song3.wav.npz"])
    assert (tmp_path / "out" / "failures.jsonl").read_text() == ""  # not the file's fault
    rc, out, _ = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet")
    assert rc == 0 and f"{4 - len(written)} encoded, {len(written)} up to date" in out
    assert len(list((tmp_path / "out").rglob("*.npz"))) == len(files)


# ----------------------------------------------------------------------------------------------
# Bad invocations: one line on stderr, exit status 2, nothing written


def _assert_refused(rc: int, err: str, match: str) -> None:
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("same-edge: error: ") and match in lines[0], err


def test_missing_or_empty_input_is_refused_and_nothing_written(tmp_path, model, capsys):
    rc, _, err = _run(capsys, tmp_path / "nope", tmp_path / "out", "--model", model)
    _assert_refused(rc, err, "input not found")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    rc, _, err = _run(capsys, tmp_path / "empty", tmp_path / "out", "--model", model)
    _assert_refused(rc, err, "holds no audio files")
    (tmp_path / "list.txt").write_text("# nothing\n")
    rc, _, err = _run(capsys, tmp_path / "list.txt", tmp_path / "out", "--model", model)
    _assert_refused(rc, err, "lists no files")
    assert not (tmp_path / "out").exists()


def test_an_audio_file_or_a_binary_file_given_as_in_is_refused_in_one_line_not_read_as_a_list(tmp_path, model, capsys):
    (song,) = _library(tmp_path / "in", n=1)
    rc, _, err = _run(capsys, song, tmp_path / "out", "--model", model)
    _assert_refused(rc, err, "is an audio file")
    (tmp_path / "latents.npz").write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe binary, not a list of paths")
    rc, _, err = _run(capsys, tmp_path / "latents.npz", tmp_path / "out", "--model", model)
    _assert_refused(rc, err, "not a text file")
    assert not (tmp_path / "out").exists()


def test_a_sample_size_over_ten_minutes_is_refused_as_a_typo_before_anything_is_written(tmp_path, model, capsys):
    _library(tmp_path / "in", n=1)
    for size in (600 * SR + 1, 10**12):
        rc, _, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--format", "sa3",
                          "--sample-size", size, "--pad")
        _assert_refused(rc, err, f"sample_size must be at most {600 * SR} samples (10 minutes at {SR} Hz)")
        assert not (tmp_path / "out").exists()


def test_output_inside_input_is_refused(tmp_path, model, capsys):
    _library(tmp_path / "in", n=1)
    before = _tree(tmp_path / "in")
    for out in (tmp_path / "in" / "latents", tmp_path / "in"):
        rc, _, err = _run(capsys, tmp_path / "in", out, "--model", model)
        _assert_refused(rc, err, "lies inside IN")
    assert _tree(tmp_path / "in") == before


def test_output_holding_another_models_outputs_is_refused_unless_overwrite(tmp_path, model, capsys):
    _library(tmp_path / "in", n=1)
    assert _run(capsys, tmp_path / "in", tmp_path / "out", "--model", DEMO, "--workers", "1", "--quiet")[0] == 0
    before = _tree(tmp_path / "out")
    rc, _, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1")
    _assert_refused(rc, err, "holds the outputs of another job (model_id")
    assert _tree(tmp_path / "out") == before
    rc, _, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--format", "sa3", "--uncaptioned", "empty")
    _assert_refused(rc, err, "format 'same-edge' (now 'sa3')")
    rc, out, _ = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet", "--overwrite")
    assert rc == 0 and "1 encoded" in out
    (npz,) = (tmp_path / "out").rglob("*.npz")
    assert LatentFile.load(npz).header.model_id == Codec.load(model, threads=1, sides=("encoder",)).manifest.model_id


def test_a_non_empty_output_not_written_by_encode_dataset_is_refused(tmp_path, model, capsys):
    _library(tmp_path / "in", n=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.npz").write_bytes(b"someone else's file")
    rc, _, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model)
    _assert_refused(rc, err, "not empty and was not written by encode-dataset")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.npz"]


def test_a_second_run_on_the_same_output_while_one_is_running_is_refused(tmp_path, model, capsys):
    import fcntl

    _library(tmp_path / "in", n=1)
    assert _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--workers", "1", "--quiet")[0] == 0
    before = _tree(tmp_path / "out")
    with open(tmp_path / "out" / ".same-edge-lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running job holds it
        rc, _, err = _run(capsys, tmp_path / "in", tmp_path / "out", "--model", model, "--overwrite")
    _assert_refused(rc, err, "another encode-dataset run is writing to")
    assert _tree(tmp_path / "out") == before


def test_an_unwritable_output_is_refused(tmp_path, model, capsys):
    _library(tmp_path / "in", n=1)
    (tmp_path / "file").write_text("a file, not a directory")
    rc, _, err = _run(capsys, tmp_path / "in", tmp_path / "file" / "out", "--model", model)
    _assert_refused(rc, err, "is not a directory")
    rc, _, err = _run(capsys, tmp_path / "in", "/proc/same-edge-dataset-test", "--model", model)  # unwritable, even for root
    _assert_refused(rc, err, "cannot write to /proc/same-edge-dataset-test")


@pytest.mark.parametrize("argv, match", [
    (["--workers", "0"], "--workers must be from 1 to"),
    (["--threads", "0"], "--threads must be from 1 to 256"),
    (["--sample-size", "4096"], "apply to format 'sa3' only"),
    (["--format", "sa3", "--pad"], "pad needs a sample_size"),
    (["--format", "sa3", "--sample-size", "0"], "--sample-size must be at least 1"),
    (["--model", "/nonexistent-model"], "/nonexistent-model"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, model, capsys, argv, match):
    _library(tmp_path / "in", n=1)
    argv = argv if "--model" in argv else [*argv, "--model", model]
    rc, _, err = _run(capsys, tmp_path / "in", tmp_path / "out", *argv)
    _assert_refused(rc, err, match)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# Stable Audio 3's pre-encoded layout, read back the way its PreEncodedDataset reads it


def _sa3_samples(root: Path) -> list[tuple[Path, Path]]:
    """SA3's file discovery: filelist.txt at the root if present (else every non-hidden .npy below),
    minus silence.npy; each .npy paired with the path that has '.npy' replaced by '.json'."""
    filelist = root / FILELIST
    if filelist.exists():
        files = [str(root / line.strip()) for line in filelist.read_text().splitlines()]
    else:
        files = [str(p) for p in root.rglob("*.npy") if not p.name.startswith(".")]
    files = [f for f in files if os.path.basename(f) != SILENCE]
    return [(Path(f), Path(f.replace(".npy", ".json"))) for f in files]


def _sa3_item(npy: Path, js: Path, silence: np.ndarray | None, crop: int | None):
    """SA3's PreEncodedDataset item (random_crop off): latents as a torch tensor, cropped at the last
    valid frame's window or padded with the silence latent; the padding mask follows."""
    import torch

    latents = torch.from_numpy(np.load(npy))
    info = json.loads(js.read_text())
    if crop is not None:
        n = latents.shape[1]
        if n > crop:
            latents = latents[:, :crop]
            info["padding_mask"] = info["padding_mask"][:crop]
        elif n < crop:
            reps = 1 if silence.shape[1] >= crop - n else crop // silence.shape[1] + 1
            fill = np.tile(silence, (1, reps))[:, : crop - n]
            latents = torch.cat([latents, torch.from_numpy(np.ascontiguousarray(fill))], dim=1)
            info["padding_mask"] = info["padding_mask"][:n] + [0] * (crop - n)
    return latents, info


def test_sa3_layout_is_read_by_sa3s_loader_with_every_field_right(tmp_path, model, codec):
    files = _library(tmp_path / "in", n=4)
    for p in files[:3]:
        p.with_suffix(".txt").write_text(f"  caption of {p.stem}\n")
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(
        model=model, workers=2, threads=1, format="sa3", progress=False))
    assert (s.encoded, s.uncaptioned, s.failed) == (3, 1, 0)  # the captionless file is skipped, as SA3 does
    out, dim, hop = tmp_path / "out", codec.latent_dim, codec.hop
    samples = _sa3_samples(out)
    assert sorted(npy.relative_to(out).as_posix() for npy, _ in samples) == \
        sorted(p.relative_to(tmp_path / "in").as_posix() + ".npy" for p in files[:3])
    assert (out / FILELIST).read_text().splitlines() == sorted(npy.relative_to(out).as_posix() for npy, _ in samples)
    raw_silence = np.load(out / SILENCE)
    assert raw_silence.dtype == np.float32 and raw_silence.shape == (1, dim, 3072)  # SA3's default sample_size / hop
    silence = raw_silence.squeeze(0)  # what SA3's loader keeps: [C, N]
    # Digital silence: its first frames are those of any long enough run of zeros.
    np.testing.assert_allclose(silence[:, :60], codec.encode(np.zeros((2, 64 * hop), np.float32))[:, :60], rtol=1e-4, atol=1e-5)
    for (npy, js), src in zip(sorted(samples), sorted(files[:3], key=lambda p: p.relative_to(tmp_path / "in").as_posix()),
                              strict=True):
        latents, info = _sa3_item(npy, js, silence, crop=None)
        info_src = sf.info(src)
        n = math.ceil(info_src.frames * SR / info_src.samplerate - 1e-9)
        assert latents.dtype == __import__("torch").float32 and latents.shape[0] == dim
        assert abs(latents.shape[1] - math.ceil(n / hop)) <= 1
        # SA3 encodes the clip padded with silence to its window and keeps the frames over the audio.
        sa3 = _reference(codec, src, pad_to=SA3_DEFAULT_SAMPLE_SIZE)[:, : math.ceil(n / hop)]
        np.testing.assert_allclose(latents.numpy(), sa3, rtol=1e-4, atol=1e-5)
        assert info["padding_mask"] == [1] * latents.shape[1]
        assert info["path"] == str(src) and info["relpath"] == src.relative_to(tmp_path / "in").as_posix()
        assert info["prompt"] == f"caption of {src.stem}"
        assert info["seconds_start"] == 0 and info["seconds_total"] == math.ceil(info_src.duration)
        assert info["timestamps"] == [0.0, 1.0] and info["sample_rate"] == SR
        assert info["model_id"] == codec.manifest.model_id and info["precision"] == "fp32"
        # Training crops: longer than the crop, cut; shorter, padded with silence and masked out.
        cropped, cinfo = _sa3_item(npy, js, silence, crop=3)
        assert cropped.shape == (dim, 3) and cinfo["padding_mask"] == [1, 1, 1]
        padded, pinfo = _sa3_item(npy, js, silence, crop=latents.shape[1] + 5)
        assert padded.shape == (dim, latents.shape[1] + 5) and pinfo["padding_mask"] == [1] * latents.shape[1] + [0] * 5
        np.testing.assert_array_equal(padded[:, latents.shape[1]:].numpy(), silence[:, :5])


def test_sa3_sample_size_crops_and_pads_to_a_fixed_length_with_the_padding_mask_at_latent_rate(tmp_path, model, codec):
    files = _library(tmp_path / "in", n=4)  # 0.6, 0.95, 1.3, 1.65 s
    size = 6 * codec.hop  # 0.557 s: every file is cropped
    s = encode_dataset(tmp_path / "in", tmp_path / "crop", DatasetOptions(model=model, workers=1, threads=1, format="sa3",
                       sample_size=size, uncaptioned="empty", progress=False))
    assert (s.encoded, s.uncaptioned) == (4, 0)
    assert np.load(tmp_path / "crop" / SILENCE).shape == (1, codec.latent_dim, 6)
    for p in files:
        rel = p.relative_to(tmp_path / "in").as_posix()
        z = np.load(tmp_path / "crop" / (rel + ".npy"))
        info = json.loads((tmp_path / "crop" / (rel + ".json")).read_text())
        assert z.shape == (codec.latent_dim, 6) and info["padding_mask"] == [1] * 6 and info["prompt"] == ""
        np.testing.assert_allclose(z, _reference(codec, p, samples=size), rtol=1e-4, atol=1e-5)
        assert info["seconds_total"] == math.ceil(sf.info(p).duration)
        total = sf.info(p).frames * SR / sf.info(p).samplerate
        assert info["timestamps"] == pytest.approx([0.0, size / max(total, size)])
    size = 12 * codec.hop  # 1.11 s: the short files are padded with silence
    encode_dataset(tmp_path / "in", tmp_path / "pad", DatasetOptions(
        model=model, workers=1, threads=1, format="sa3", sample_size=size,
                   pad=True, uncaptioned="empty", progress=False))
    for p in files:
        rel = p.relative_to(tmp_path / "in").as_posix()
        z = np.load(tmp_path / "pad" / (rel + ".npy"))
        mask = json.loads((tmp_path / "pad" / (rel + ".json")).read_text())["padding_mask"]
        n = len(AudioReader(p, SR, 2).read_all()[0])
        assert z.shape == (codec.latent_dim, 12)
        assert mask == [1 if i * codec.hop < min(n, size) else 0 for i in range(12)] == padding_mask(min(n, size), size, 12)
        np.testing.assert_allclose(z, _reference(codec, p, samples=size, pad_to=size), rtol=1e-4, atol=1e-5)


def test_sa3_padding_mask_is_nearest_neighbour_of_the_sample_mask():
    # F.interpolate(mode="nearest") picks sample floor(i * in / out) for frame i.
    assert padding_mask(10, 10, 3) == [1, 1, 1]
    assert padding_mask(5, 16, 4) == [1, 1, 0, 0]  # samples 0, 4, 8, 12: 0 and 4 are < 5
    assert padding_mask(4, 16, 4) == [1, 0, 0, 0]


def test_sa3_a_caption_change_reencodes_and_an_added_caption_is_picked_up(tmp_path, model):
    files = _library(tmp_path / "in", n=2)
    files[0].with_suffix(".txt").write_text("first")
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(
        model=model, workers=1, threads=1, format="sa3", progress=False))
    assert (s.encoded, s.uncaptioned) == (1, 1)
    files[0].with_suffix(".txt").write_text("second caption")
    files[1].with_suffix(".txt").write_text("now captioned")
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(
        model=model, workers=1, threads=1, format="sa3", progress=False))
    assert (s.encoded, s.skipped, s.uncaptioned) == (2, 0, 0)
    rel = files[0].relative_to(tmp_path / "in").as_posix()
    assert json.loads((tmp_path / "out" / (rel + ".json")).read_text())["prompt"] == "second caption"
    assert len((tmp_path / "out" / FILELIST).read_text().splitlines()) == 2


def test_sa3_refuses_paths_its_loader_would_mispair(tmp_path, model):
    (tmp_path / "in" / "x.npy.d").mkdir(parents=True)
    sf.write(tmp_path / "in" / "x.npy.d" / "a.wav", _music(0.3), SR)
    sf.write(tmp_path / "in" / "b.wav", _music(0.3), SR)
    s = encode_dataset(tmp_path / "in", tmp_path / "out", DatasetOptions(model=model, workers=1, threads=1, format="sa3",
                       sample_size=4096, uncaptioned="empty", progress=False))
    assert (s.encoded, s.failed) == (1, 1)
    assert "'.npy'" in json.loads((tmp_path / "out" / "failures.jsonl").read_text())["reason"]
