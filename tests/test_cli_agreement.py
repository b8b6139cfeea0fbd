"""The two command lines behave as one at the edges: one table of cases, each run through
`same-edge` (Python) and `same-edge-native`. Both must exit with the status the table gives, say
one line on stderr that means what the table says (or nothing, when they succeed), and leave the
same files behind: none after a failure, not even the folders they made for the output."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_native import BUILD, DEMO, _cmake_build

# XNNPACK packs the demo's weights into 2.2 MB (encoder) and 2.5 MB (decoder); a roundtrip of the
# 9.5-s input writes 3.4 MB of float WAV, its latents 0.1 MB. (Under 10 s, the Python CLI shows no
# progress bar on stderr.)
BELOW_THE_PACKED_WEIGHTS, BETWEEN_THE_TWO_GRAPHS, ABOVE_THE_PACKED_WEIGHTS = 1 << 20, 2_400_000, 3 << 20
WRITE_PAST_THE_LIMIT = r"cannot write out\.wav: .*(File too large|file size limit)"


@dataclass
class Case:
    args: list[str]           # {in} is the inputs' folder; outputs are relative: each CLI runs in its own folder
    status: int
    message: str | None       # a regular expression the one stderr line matches (after "...: error: ")
    left: set[str] = field(default_factory=set)  # files and folders left in the CLI's folder
    file_size_limit: int | None = None
    stdout_closed: bool = False
    timeout: int = 120        # seconds; a FIFO once made the native CLI wait forever


CASES = {
    "missing-output-folder-is-created": Case(["roundtrip", "{in}/song.wav", "new/deeper/out.wav"], 0, None,
                                             {"new", "new/deeper", "new/deeper/out.wav"}),
    "missing-output-folder-is-removed-on-failure": Case(["roundtrip", "{in}/flipped.flac", "new/deeper/out.wav"], 2,
                                                        r"cannot read \S*/flipped\.flac: "),
    "closed-stdout-succeeds-when-the-output-is-written": Case(["roundtrip", "{in}/song.wav", "out.wav"], 0, None,
                                                              {"out.wav"}, stdout_closed=True),
    "bit-flipped-flac-cannot-be-read": Case(["roundtrip", "{in}/flipped.flac", "out.wav"], 2,
                                            r"cannot read \S*/flipped\.flac: "),
    "fifo-latents-are-refused-at-once": Case(["decode", "{in}/fifo.npz", "out.wav"], 2,
                                             r"latent file not found: \S*/fifo\.npz", timeout=30),
    "fifo-manifest-is-refused-at-once": Case(["roundtrip", "{in}/song.wav", "out.wav", "--model", "{in}/fifo-manifest"],
                                             2, r"fifo-manifest has no manifest\.json", timeout=30),
    "fifo-graph-is-refused-at-once": Case(["roundtrip", "{in}/song.wav", "out.wav", "--model", "{in}/fifo-graph"], 2,
                                          r"fifo-graph is missing encoder\.tflite", timeout=30),
    "file-size-limit-below-the-packed-weights-while-writing": Case(
        ["roundtrip", "{in}/long.wav", "out.wav"], 2, WRITE_PAST_THE_LIMIT, file_size_limit=BELOW_THE_PACKED_WEIGHTS),
    "file-size-limit-between-the-graphs-packed-weights-while-writing": Case(
        ["roundtrip", "{in}/long.wav", "out.wav"], 2, WRITE_PAST_THE_LIMIT, file_size_limit=BETWEEN_THE_TWO_GRAPHS),
    "file-size-limit-above-the-packed-weights-while-writing": Case(
        ["stream", "{in}/long.wav", "out.wav"], 2, WRITE_PAST_THE_LIMIT, file_size_limit=ABOVE_THE_PACKED_WEIGHTS),
    "file-size-limit-below-the-packed-weights-and-a-small-output": Case(
        ["encode", "{in}/long.wav", "z.npz"], 0, None, {"z.npz"}, file_size_limit=BELOW_THE_PACKED_WEIGHTS),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    for name, seconds in (("song", 3.0), ("long", 9.5)):
        t = np.arange(int(seconds * 44100)) / 44100
        x = np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.2 * np.sin(2 * np.pi * 440 * t + 1)], axis=1)
        sf.write(d / f"{name}.wav", x.astype(np.float32), 44100, subtype="PCM_16")
        if name == "song":
            sf.write(d / "song.flac", x.astype(np.float32), 44100, subtype="PCM_24")
    flac = bytearray((d / "song.flac").read_bytes())
    flac[len(flac) // 2] ^= 0xFF  # inside an audio frame: its CRC fails
    (d / "flipped.flac").write_bytes(bytes(flac))
    os.mkfifo(d / "fifo.npz")
    for name, fifo in (("fifo-manifest", "manifest.json"), ("fifo-graph", "encoder.tflite")):
        shutil.copytree(DEMO, d / name, ignore=shutil.ignore_patterns("*.flac", "*.safetensors", "*.md"))
        (d / name / fifo).unlink()
        os.mkfifo(d / name / fifo)
    return d


@pytest.fixture(scope="module")
def clis() -> dict[str, list[str]]:
    _cmake_build(BUILD)
    return {"same-edge": [sys.executable, "-m", "same_edge"], "same-edge-native": [str(BUILD / "same-edge-native")]}


def _child_setup(case: Case) -> Callable[[], None] | None:
    if case.file_size_limit is None and not case.stdout_closed:
        return None

    def setup() -> None:
        import resource

        if case.file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.file_size_limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        if case.stdout_closed:
            os.close(1)

    return setup


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("name", list(CASES))
def test_both_command_lines_behave_as_the_table_says(clis, inputs, tmp_path, name):
    case = CASES[name]
    seen = {}
    for cli, command in clis.items():
        folder = tmp_path / cli
        folder.mkdir()
        args = [a.replace("{in}", str(inputs)) for a in case.args]
        if "--model" not in args:
            args += ["--model", str(DEMO)]
        done = subprocess.run([*command, *args, "--threads", "1"], cwd=folder, text=True, timeout=case.timeout,
                              stdout=None if case.stdout_closed else subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=_child_setup(case))
        lines = done.stderr.strip().splitlines()
        seen[cli] = (done.returncode, lines, _tree(folder))
        assert done.returncode == case.status, f"{cli}: exit {done.returncode}: {done.stderr[-2000:]}"
        if case.message is None:
            assert not [line for line in lines if "error" in line], f"{cli}: {done.stderr[-2000:]}"
        else:
            assert len(lines) == 1 and lines[0].startswith(f"{cli}: error: "), f"{cli}: {done.stderr[-2000:]}"
            assert re.search(case.message, lines[0]), f"{cli}: {lines[0]}"
        assert _tree(folder) == case.left, f"{cli} left {sorted(_tree(folder))}"
    assert len({(status, frozenset(left)) for status, _, left in seen.values()}) == 1, seen
