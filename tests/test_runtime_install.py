"""`pip install .` alone gives a working runtime: a fresh virtual environment without torch runs
`same-edge roundtrip` on the bundled demo model (no `--model`) and on an exported model directory."""

import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_runtime_only_install_round_trips_a_file_without_torch_on_the_bundled_model_by_default(tmp_path, export_dir):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    install = subprocess.run([py, "-m", "pip", "install", "--quiet", str(REPO)], capture_output=True, text=True,
                             timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]
    no_torch = subprocess.run([py, "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0  # the runtime pulled no torch in
    sf.write(tmp_path / "in.wav", (0.1 * np.random.default_rng(0).normal(size=(44100, 2))).astype(np.float32), 44100)
    res = subprocess.run([env_dir / "bin" / "same-edge", "roundtrip", tmp_path / "in.wav", tmp_path / "out.wav",
                          "--model", export_dir("fp32")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert sf.info(tmp_path / "out.wav").frames == 44100
    bundled = subprocess.run([env_dir / "bin" / "same-edge", "roundtrip", tmp_path / "in.wav", tmp_path / "bundled.wav"],
                             capture_output=True, text=True, timeout=300)
    assert bundled.returncode == 0, bundled.stderr
    assert sf.info(tmp_path / "bundled.wav").frames == 44100
