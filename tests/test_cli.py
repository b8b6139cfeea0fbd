"""The same-edge command line on real files: formats, rates, channels, latent files, and every
kind of bad input (one clear line, exit status 2, no output file left behind)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from same_edge.cli import main
from same_edge.latents import LatentFile

SR = 44100


@pytest.fixture(scope="module")
def model(export_dir):
    return str(export_dir("fp32"))


def _music(seconds=2.0, sr=SR, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sign(np.sin(2 * np.pi * 220 * t)) * np.exp(-(t % 0.5) * 6) + 0.05 * rng.normal(size=t.size)
    return np.stack([x * (0.8 + 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_clean_failure(rc, err, out_dir, match):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("same-edge: error: ") and match in lines[0], err
    assert "Traceback" not in err
    assert [p.name for p in out_dir.iterdir() if p.name.startswith(".") or p.name.startswith("out")] == []


def test_roundtrip_writes_audio_of_the_input_length_and_reports_quality(tmp_path, capsys, model):
    sf.write(tmp_path / "in.wav", _music(3.0), SR, subtype="PCM_16")
    rc, out, _ = _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "rt.wav", "--model", model)
    assert rc == 0
    y, sr = sf.read(tmp_path / "rt.wav", dtype="float32")
    assert sr == SR and y.shape == (3 * SR, 2)
    assert "SNR" in out and "SI-SDR" in out and "mel distance" in out and "x real time" in out


def test_encode_decode_round_trip_through_a_latent_file_restores_the_exact_length(tmp_path, capsys, model):
    sf.write(tmp_path / "in.flac", _music(1.234), SR)
    assert _run(capsys, "encode", tmp_path / "in.flac", tmp_path / "z.npz", "--model", model)[0] == 0
    lf = LatentFile.load(tmp_path / "z.npz")
    n = int(1.234 * SR)
    assert lf.latents.shape == (8, -(-n // 4096)) and lf.header.length == n and lf.header.sample_rate == SR
    assert _run(capsys, "decode", tmp_path / "z.npz", tmp_path / "y.flac", "--model", model)[0] == 0
    assert sf.info(tmp_path / "y.flac").frames == n


def test_other_rates_are_resampled_and_keep_rate_writes_back_at_the_input_rate(tmp_path, capsys, model):
    sf.write(tmp_path / "in48.wav", _music(2.0, sr=48000), 48000)
    assert _run(capsys, "roundtrip", tmp_path / "in48.wav", tmp_path / "a.wav", "--model", model)[0] == 0
    assert sf.info(tmp_path / "a.wav").samplerate == SR
    assert abs(sf.info(tmp_path / "a.wav").frames - 2 * SR) <= 1
    assert _run(capsys, "roundtrip", tmp_path / "in48.wav", tmp_path / "b.wav", "--keep-rate", "--model", model)[0] == 0
    info = sf.info(tmp_path / "b.wav")
    assert info.samplerate == 48000 and abs(info.frames - 96000) <= 2


def test_mono_is_duplicated_and_integer_pcm_is_scaled(tmp_path, capsys, model):
    from same_edge.audio import read_audio

    sf.write(tmp_path / "mono.wav", np.full((1000, 1), 0.5, np.float32), SR, subtype="PCM_16")
    audio, rate = read_audio(tmp_path / "mono.wav", SR)
    assert rate == SR and audio.shape == (2, 1000) and np.allclose(audio, 0.5, atol=1e-4)
    assert _run(capsys, "roundtrip", tmp_path / "mono.wav", tmp_path / "m.wav", "--model", model)[0] == 0


def test_more_than_two_channels_needs_downmix(tmp_path, capsys, model):
    sf.write(tmp_path / "quad.wav", _music(1.0, channels=4), SR)
    rc, _, err = _run(capsys, "roundtrip", tmp_path / "quad.wav", tmp_path / "out.wav", "--model", model)
    _assert_clean_failure(rc, err, tmp_path, "--downmix")
    assert _run(capsys, "roundtrip", tmp_path / "quad.wav", tmp_path / "d.wav", "--downmix", "--model", model)[0] == 0


def test_silence_and_a_single_sample_are_valid_input(tmp_path, capsys, model):
    sf.write(tmp_path / "silence.wav", np.zeros((SR, 2), np.float32), SR)
    rc, out, _ = _run(capsys, "roundtrip", tmp_path / "silence.wav", tmp_path / "s.wav", "--model", model)
    assert rc == 0 and "n/a (silent input)" in out
    sf.write(tmp_path / "one.wav", np.full((1, 2), 0.25, np.float32), SR)
    assert _run(capsys, "roundtrip", tmp_path / "one.wav", tmp_path / "o.wav", "--model", model)[0] == 0
    assert sf.info(tmp_path / "o.wav").frames == 1


def test_stream_reports_block_timing_and_latency(tmp_path, capsys, model):
    sf.write(tmp_path / "in.wav", _music(2.0), SR)
    rc, out, _ = _run(capsys, "stream", tmp_path / "in.wav", tmp_path / "st.wav", "--model", model)
    assert rc == 0 and "p99" in out and "slower than real time" in out and "algorithmic latency" in out
    assert sf.info(tmp_path / "st.wav").frames == 2 * SR


def test_info_prints_the_manifest(capsys, model):
    rc, out, _ = _run(capsys, "info", model, "--json")
    assert rc == 0 and json.loads(out)["model"]["hop"] == 4096


def test_commands_without_a_model_use_the_bundled_one_or_fail_in_one_line(tmp_path, capsys, monkeypatch, model):
    import same_edge.cli as cli

    sf.write(tmp_path / "in.wav", _music(1.0), SR)
    monkeypatch.setattr(cli, "DEFAULT_MODEL", tmp_path / "not-installed")
    rc, _, err = _run(capsys, "info")
    _assert_clean_failure(rc, err, tmp_path, "no bundled demo model")
    rc, _, err = _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "out.wav")
    _assert_clean_failure(rc, err, tmp_path, "no bundled demo model")

    monkeypatch.setattr(cli, "DEFAULT_MODEL", Path(model))
    rc, out, _ = _run(capsys, "info")
    assert rc == 0 and out.startswith(f"model      {model} ")
    rc, _, _ = _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "out.wav")
    assert rc == 0 and sf.info(tmp_path / "out.wav").frames == SR


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "truncated", "text", "nan", "bad_output_ext"])
def test_bad_audio_input_fails_cleanly(tmp_path, capsys, model, case):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    if case == "empty":
        src.write_bytes(b"")
    elif case == "corrupt":
        src.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(200))
    elif case == "truncated":
        sf.write(src, _music(1.0), SR, subtype="PCM_16")
        data = src.read_bytes()
        src.write_bytes(data[: len(data) // 2])
    elif case == "text":
        src = tmp_path / "in.txt"
        src.write_text("not audio at all\n" * 100)
    elif case == "nan":
        x = _music(0.5)
        x[100, 0] = np.nan
        sf.write(src, x, SR, subtype="FLOAT")
    elif case == "bad_output_ext":
        sf.write(src, _music(0.5), SR)
        dst = tmp_path / "out.mp3"
    rc, _, err = _run(capsys, "roundtrip", src, dst, "--model", model)
    _assert_clean_failure(rc, err, tmp_path, "")
    assert not dst.exists()


def test_latent_file_from_another_model_or_corrupt_is_refused(tmp_path, capsys, model, export_dir):
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    assert _run(capsys, "encode", tmp_path / "in.wav", tmp_path / "z.npz", "--model", model)[0] == 0
    z = dict(np.load(tmp_path / "z.npz"))
    z["model_id"] = np.str_("0123456789abcdef-0123456789abcdef")
    np.savez(tmp_path / "other.npz", **z)
    rc, _, err = _run(capsys, "decode", tmp_path / "other.npz", tmp_path / "out.wav", "--model", model)
    _assert_clean_failure(rc, err, tmp_path, "encoded by another model")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    rc, _, err = _run(capsys, "decode", tmp_path / "bad.npz", tmp_path / "out.wav", "--model", model)
    _assert_clean_failure(rc, err, tmp_path, "not a same-edge latent file")


def test_broken_model_directory_is_refused(tmp_path, capsys, model):
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    (broken / "decoder.tflite").unlink()
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    rc, _, err = _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "out.wav", "--model", broken)
    _assert_clean_failure(rc, err, tmp_path, "missing decoder.tflite")
    shutil.copy(broken / "encoder.tflite", broken / "decoder.tflite")  # a mismatched graph
    rc, _, err = _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "out.wav", "--model", broken)
    _assert_clean_failure(rc, err, tmp_path, "the manifest says")


def _peak_rss_mb(argv):
    proc = subprocess.Popen([sys.executable, "-m", "same_edge.cli", *map(str, argv)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_file_length(tmp_path, model):
    """File to file, a 10x longer file must not use more memory (CI-sized: 30 s against 300 s)."""
    rng = np.random.default_rng(0)
    for name, seconds in (("short", 30), ("long", 300)):
        with sf.SoundFile(tmp_path / f"{name}.wav", "w", SR, 2, subtype="PCM_16") as f:
            for _ in range(seconds // 10):
                f.write((0.1 * rng.normal(size=(10 * SR, 2))).astype(np.float32))
    short = _peak_rss_mb(["roundtrip", tmp_path / "short.wav", tmp_path / "s.wav", "--model", model])
    long = _peak_rss_mb(["roundtrip", tmp_path / "long.wav", tmp_path / "l.wav", "--model", model])
    assert long < short + 25, f"peak RSS {short:.0f} MB for 30 s, {long:.0f} MB for 300 s"


def test_the_command_writes_only_its_own_lines_to_stderr(tmp_path, model):
    """LiteRT's runtime logs at INFO level on fd 2 as it starts and exits; none of it may show."""
    sf.write(tmp_path / "in.wav", _music(1.0), SR)
    for argv in (["encode", tmp_path / "in.wav", tmp_path / "z.npz"], ["decode", tmp_path / "z.npz", tmp_path / "y.wav"],
                 ["roundtrip", tmp_path / "in.wav", tmp_path / "rt.wav"]):
        out = subprocess.run([sys.executable, "-m", "same_edge.cli", *map(str, argv), "--model", model],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert [ln for ln in out.stderr.splitlines() if not ln.startswith("warning: ")] == [], out.stderr


def test_demo_streams_a_clip_and_writes_the_reconstruction_and_a_picture(tmp_path, capsys, model):
    rc, out, _ = _run(capsys, "demo", "--model", model, "--out", tmp_path / "demo")
    assert rc == 0
    assert "x real time" in out and "algorithmic latency" in out and "mel distance" in out
    assert sf.info(tmp_path / "demo" / "reconstruction.wav").frames == 10 * SR  # the bundled 10 s clip
    assert (tmp_path / "demo" / "spectrograms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_on_the_bundled_model_reports_its_held_out_quality_against_pca(tmp_path, capsys):
    rc, out, _ = _run(capsys, "demo", "--out", tmp_path / "demo")
    assert rc == 0
    assert "held-out music" in out and "same-edge demo model" in out and "PCA baseline" in out


def test_demo_refuses_a_broken_quality_report_in_one_line_before_writing_anything(tmp_path, capsys, model):
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    (broken / "quality.json").write_text('{"systems": {"x": {}}}')
    rc, _, err = _run(capsys, "demo", "--model", broken, "--out", tmp_path / "demo")
    assert rc == 2 and "quality.json: not a quality report" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "demo").exists()


def _codec(model):
    from same_edge import Codec

    return Codec.load(model)


@pytest.mark.parametrize("samples", [1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 1])
def test_roundtrip_output_is_the_codec_s_output_sample_for_sample_at_frame_boundaries(tmp_path, capsys, model, samples):
    """The file path adds nothing and loses nothing: left stays left, every sample is the Codec's."""
    x = _music(samples / SR + 1e-6)[:samples]
    x[:, 1] *= -0.5  # channels that differ: a swap would show
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    assert _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "rt.wav", "--model", model)[0] == 0
    y, _ = sf.read(tmp_path / "rt.wav", dtype="float32", always_2d=True)
    codec = _codec(model)
    expected = codec.decode(codec.encode(np.ascontiguousarray(x.T)))[:, :samples]
    assert y.shape == (samples, 2) and np.array_equal(y.T, expected)
    assert _run(capsys, "encode", tmp_path / "in.wav", tmp_path / "z.npz", "--model", model)[0] == 0
    assert np.array_equal(LatentFile.load(tmp_path / "z.npz").latents, codec.encode(np.ascontiguousarray(x.T)))
    assert _run(capsys, "decode", tmp_path / "z.npz", tmp_path / "d.wav", "--model", model)[0] == 0
    assert np.array_equal(sf.read(tmp_path / "d.wav", dtype="float32", always_2d=True)[0], y)


@pytest.mark.parametrize("argv", [["stream", "--block", "0"], ["stream", "--threads", "100000"], ["roundtrip", "--threads", "0"],
                                  ["roundtrip", "--threads", "x"]])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, model, argv):
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    with pytest.raises(SystemExit) as stop:
        main([argv[0], str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), *argv[1:], "--model", model])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1 and argv[-2] in err
    assert not (tmp_path / "out.wav").exists()


def test_output_names_at_the_255_byte_limit_work(tmp_path, capsys, model):
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    out = tmp_path / ("o" * 251 + ".wav")
    assert _run(capsys, "roundtrip", tmp_path / "in.wav", out, "--model", model)[0] == 0 and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.wav", out.name])


def test_an_output_path_that_is_a_directory_fails_cleanly_and_leaves_nothing(tmp_path, capsys, model):
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    (tmp_path / "out.wav").mkdir()
    rc, _, err = _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "out.wav", "--model", model)
    assert rc == 2 and "directory" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"] and not any((tmp_path / "out.wav").iterdir())


def test_a_failed_command_removes_the_directories_it_created(tmp_path, capsys, model):
    (tmp_path / "in.wav").write_bytes(b"RIFF junk")
    rc, _, _ = _run(capsys, "roundtrip", tmp_path / "in.wav", tmp_path / "new" / "deeper" / "out.wav", "--model", model)
    assert rc == 2 and not (tmp_path / "new").exists()
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    z = dict(np.load(_encoded(tmp_path, capsys, model)))
    z["model_id"] = np.str_("0123456789abcdef-0123456789abcdef")
    np.savez(tmp_path / "other.npz", **z)
    rc, _, _ = _run(capsys, "decode", tmp_path / "other.npz", tmp_path / "made" / "out.wav", "--model", model)
    assert rc == 2 and not (tmp_path / "made").exists()


def _encoded(tmp_path, capsys, model):
    assert _run(capsys, "encode", tmp_path / "in.wav", tmp_path / "z.npz", "--model", model)[0] == 0
    return tmp_path / "z.npz"


def test_keep_rate_to_a_rate_flac_cannot_store_is_one_line(tmp_path, capsys, model):
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    z = dict(np.load(_encoded(tmp_path, capsys, model)))
    z["source_rate"] = np.int64(700_000)
    np.savez(tmp_path / "odd.npz", **z)
    rc, _, err = _run(capsys, "decode", tmp_path / "odd.npz", tmp_path / "out.flac", "--keep-rate", "--model", model)
    _assert_clean_failure(rc, err, tmp_path, "FLAC cannot store 700000 Hz")


@pytest.mark.parametrize("limit", [4 << 10, 300 << 10, 2 << 20])  # below the packed weights, between, while writing
@pytest.mark.parametrize("command", ["roundtrip", "decode", "stream"])
def test_a_full_disk_or_file_size_limit_is_one_line_and_leaves_no_file(tmp_path, capsys, model, command, limit):
    """RLIMIT_FSIZE (ulimit -f) makes writes fail as a full disk does (Python ignores SIGXFSZ). Under
    a limit the graphs load without XNNPACK's weight-cache file, which a write past the limit would
    abort inside XNNPACK; the output (3.5 MB of float WAV) then meets the limit."""
    import resource

    sf.write(tmp_path / "in.wav", _music(10.0), SR)
    src = _encoded(tmp_path, capsys, model) if command == "decode" else tmp_path / "in.wav"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run([sys.executable, "-m", "same_edge", command, str(src), str(tmp_path / "out.wav"), "--model", model],
                         capture_output=True, text=True, preexec_fn=small_files, timeout=300)
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("same-edge:")]  # the rest is the progress bar
    assert out.returncode == 2 and len(errors) == 1 and "disk full" in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))]


@pytest.mark.parametrize("signum", [15, 1])
def test_sigterm_and_sighup_leave_no_temporary_file_and_keep_an_existing_output(tmp_path, model, signum):
    import signal
    import time

    with sf.SoundFile(tmp_path / "in.wav", "w", SR, 2, subtype="PCM_16") as f:
        for _ in range(12):
            f.write(_music(10.0))
    (tmp_path / "out.wav").write_bytes(b"previous output")
    proc = subprocess.Popen([sys.executable, "-m", "same_edge", "stream", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                             "--model", model], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not any(p.name.startswith(".out.wav.") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum and err.strip() == f"same-edge: stopped by {signal.Signals(signum).name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]
    assert (tmp_path / "out.wav").read_bytes() == b"previous output"


def test_a_closed_stdout_is_not_a_traceback(tmp_path, model):
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    out = subprocess.run([sys.executable, "-m", "same_edge", "info", model], stdout=subprocess.DEVNULL, capture_output=False,
                         stderr=subprocess.PIPE, text=True, timeout=120, pass_fds=(), close_fds=True,
                         preexec_fn=lambda: os.close(1))
    assert out.returncode in (0, 2) and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 1
    piped = subprocess.Popen([sys.executable, "-m", "same_edge", "info", model, "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    piped.stdout.close()  # the reader went away: a broken pipe
    _, err = piped.communicate(timeout=120)
    assert piped.returncode in (0, 2) and "Traceback" not in err


def test_upper_case_extensions_are_the_same_formats(tmp_path, capsys, model):
    sf.write(tmp_path / "IN.WAV", _music(0.5), SR)
    assert _run(capsys, "encode", tmp_path / "IN.WAV", tmp_path / "Z.NPZ", "--model", model)[0] == 0
    assert _run(capsys, "decode", tmp_path / "Z.NPZ", tmp_path / "OUT.FLAC", "--model", model)[0] == 0
    assert sf.info(tmp_path / "OUT.FLAC").format == "FLAC"


def test_python_dash_m_same_edge_is_the_command_line():
    out = subprocess.run([sys.executable, "-m", "same_edge", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "roundtrip" in out.stdout and "encode" in out.stdout


def test_file_names_that_are_not_utf_8_are_read_written_and_printed_as_their_bytes(tmp_path):
    """POSIX file names are bytes: a Latin-1 name, in and out, works and is printed unchanged."""
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    folder = os.fsencode(tmp_path)
    source = folder + b"/caf\xe9.wav"
    os.rename(tmp_path / "in.wav", source)
    for command, src, dst in (("encode", source, folder + b"/caf\xe9.npz"), ("decode", folder + b"/caf\xe9.npz",
                              folder + b"/d\xe9cod\xe9.flac"), ("roundtrip", source, folder + b"/r\xe9.wav"),
                              ("stream", source, folder + b"/s\xe9.wav")):
        done = subprocess.run([sys.executable, "-m", "same_edge", command, src, dst], capture_output=True, timeout=120)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
        assert done.stdout.startswith(dst + b":") and os.path.isfile(dst)
    assert sf.info(folder + b"/r\xe9.wav").frames == int(0.5 * SR)


def test_a_closed_stderr_is_no_failure(tmp_path):
    sf.write(tmp_path / "in.wav", _music(0.5), SR)
    done = subprocess.run([sys.executable, "-m", "same_edge", "encode", str(tmp_path / "in.wav"), str(tmp_path / "z.npz")],
                          stdout=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(2))
    assert done.returncode == 0 and done.stdout.startswith(f"{tmp_path / 'z.npz'}:") and (tmp_path / "z.npz").is_file()
