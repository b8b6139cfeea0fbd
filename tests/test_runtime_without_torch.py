"""The runtime package installs and runs without torch; the export command says how to get it."""

import subprocess
import sys

BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=300)


def test_runtime_encodes_and_decodes_with_torch_unimportable(export_dir):
    model = export_dir("fp32")
    res = _run(
        "import numpy as np\n"
        "import same_edge\n"
        f"codec = same_edge.Codec.load({str(model)!r})\n"
        "z = codec.encode(np.zeros((2, 10000), np.float32))\n"
        "y = codec.decode(z)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(z.shape, y.shape)\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(8, 3) (2, 12288)"


def test_every_runtime_module_imports_without_torch():
    res = _run("import same_edge.audio, same_edge.cli, same_edge.codec, same_edge.graph, same_edge.latents\n")
    assert res.returncode == 0, res.stderr


def test_export_without_the_extra_prints_the_install_hint():
    res = _run("from same_edge.cli import main\n"
               "sys.exit(main(['export', '--config', 'c.json', '--checkpoint', 'm.safetensors', '--out', 'o']))\n")
    assert res.returncode == 2
    assert res.stderr.startswith("same-edge: error: same-edge export needs the export extra: pip install 'same-edge[export]'")
    assert len(res.stderr.strip().splitlines()) == 1
