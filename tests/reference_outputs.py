"""Reference outputs: what ``Codec`` computes on two fixed inputs, stored as arrays in
``tests/data/reference_outputs.npz`` with the CPU they were recorded on
(``tests/data/reference_outputs.json``), and the tolerance within which any other CPU must
reproduce them.

Why a tolerance and not a hash: XNNPACK picks its kernels by instruction set, and kernels round
and accumulate in different orders, so the last bits of every float output depend on the CPU
family. Bit-exactness is a property within one machine, asserted elsewhere (stream = offline,
C = Python, 1 thread = 2).

How the tolerances were chosen (max |output - reference| / max |reference|, per output). The
reference was recorded on an AMD EPYC (Zen 3: AVX2, FMA; no AVX-512). The same script run under
``qemu-x86_64 -cpu SandyBridge`` (AVX without FMA or AVX2: XNNPACK's older kernels, a mul and an
add rounded separately in every matmul) gave the drift of a change of kernels; ``graph_edit``'s
edits gave the effect of a change of graph (one weight moved by 1e-3, an int8 one by that many
quanta and at least one; the first, second, middle and last matmul of each side):

  output                    | another CPU's kernels | one weight moved         | tolerance
  tiny fp32 encode / decode | 1.9e-7 / 5.5e-7       | 2.8e-6 to 5.3e-4         | 2e-6
  demo w8a8 encode / decode | 8.0e-4 / 2.1e-3       | 0 to 1.6e-3              | 1e-2
  demo w8a8, the last TANH of every signature made a LOGISTIC: encoder 0.77 / 0.21, decoder 0.35

fp32: 3.6x above the drift and below every moved weight; the test moves the encoder's first
weight (encode 5.4e-6, 2.7x the tolerance). w8a8: dynamic int8 activations turn one-ulp
differences into whole quantisation steps, so a change of kernels moves the outputs as much as
one weight moved by a quantum does, and no tolerance tells them apart; 1e-2 is 4.8x the drift,
and the test changes one op of the decoder instead (35x the tolerance). Single w8a8 weights are
guarded by the byte-identical fresh export of the demo checkpoint (``tests/test_demo_model.py``).

    python tests/reference_outputs.py record [--tiny-model DIR]      # re-record, on purpose
    python tests/reference_outputs.py compare [--tiny-model DIR]     # this CPU against the record
    qemu-x86_64 -cpu SandyBridge .venv/bin/python tests/reference_outputs.py compare --tiny-model DIR

``--tiny-model``: the tiny fixture's fp32 export with windows (1, 2) (default: exported now, which
needs torch; under emulation, export natively first).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import date
from importlib import metadata
from pathlib import Path

import numpy as np

from same_edge import Codec
from same_edge.audio import read_audio
from same_edge.models import DEMO_MODEL_DIR

DATA = Path(__file__).parent / "data"
ARRAYS = DATA / "reference_outputs.npz"
ABOUT = DATA / "reference_outputs.json"
# max |output - reference| / max |reference|; the table above says how each was chosen.
TOLERANCE = {"demo": 1e-2, "tiny_fp32": 2e-6}
DEMO_SAMPLES = 220623  # the clip's first 5 s: 54 latent frames, the last one partly padding


def demo_input(sample_rate: int) -> np.ndarray:
    """[2, 220623] float32: the bundled clip's first five seconds."""
    return read_audio(DEMO_MODEL_DIR / "clip.flac", sample_rate)[0][:, :DEMO_SAMPLES]


def tiny_input() -> np.ndarray:
    """[2, 24653] float32 noise: three 8192-sample windows and 77 samples more."""
    return np.random.default_rng(2026).normal(0, 0.1, (2, 3 * 8192 + 77)).astype(np.float32)


def outputs(codec: Codec, audio: np.ndarray) -> dict[str, np.ndarray]:
    """``encode`` ([latent_dim, L]) and ``decode`` (its decoding, [2, L * hop])."""
    z = codec.encode(audio)
    return {"encode": z, "decode": codec.decode(z)}


def demo_outputs(threads: int = 2) -> dict[str, np.ndarray]:
    codec = Codec.load(DEMO_MODEL_DIR, threads=threads)
    return outputs(codec, demo_input(codec.sample_rate))


def tiny_outputs(model_dir: Path, threads: int = 2) -> dict[str, np.ndarray]:
    return outputs(Codec.load(model_dir, threads=threads), tiny_input())


def recorded(model: str) -> dict[str, np.ndarray]:
    """The recorded outputs of ``model`` ("demo" or "tiny_fp32")."""
    with np.load(ARRAYS) as arrays:
        return {key: arrays[f"{model}/{key}"] for key in ("encode", "decode")}


def distance(got: np.ndarray, reference: np.ndarray) -> float:
    """max |got - reference| / max |reference|; inf when the shapes differ."""
    if got.shape != reference.shape:
        return float("inf")
    return float(np.abs(got.astype(np.float64) - reference).max() / np.abs(reference).max())


def mismatches(model: str, got: dict[str, np.ndarray]) -> list[str]:
    """One line per output of ``model`` farther from the record than its tolerance."""
    reference = recorded(model)
    return [f"{model} {key}: {distance(got[key], reference[key]):.3g} from the record (tolerance {TOLERANCE[model]:g})"
            for key in reference if distance(got[key], reference[key]) > TOLERANCE[model]]


def _cpu() -> dict[str, str]:
    """Model name and flags, as ``lscpu`` shows them (read from /proc/cpuinfo: Linux only)."""
    info: dict[str, str] = {"machine": platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "flags") and key not in info:
                info[key] = value.strip()
    except OSError:
        pass
    return info


def _tiny_model(path: str | None, work: Path) -> Path:
    if path:
        return Path(path)
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import TEST_WINDOWS, TINY_CHECKPOINT, TINY_CONFIG
    from same_edge_export.convert import export

    export(TINY_CONFIG, TINY_CHECKPOINT, work / "tiny-fp32", "fp32", TEST_WINDOWS, progress=False)
    return work / "tiny-fp32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("--tiny-model", help="the tiny fixture's fp32 export with windows (1, 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        got = {"demo": demo_outputs(), "tiny_fp32": tiny_outputs(_tiny_model(args.tiny_model, Path(work)))}
    if args.action == "record":
        np.savez_compressed(ARRAYS, **{f"{m}/{k}": a for m, out in got.items() for k, a in out.items()})
        ABOUT.write_text(json.dumps({
            "about": __doc__.split("\n\n")[0].replace("\n", " "),
            "recorded": date.today().isoformat(),
            "cpu": _cpu(),
            "ai-edge-litert": metadata.version("ai-edge-litert"),
            "inputs": {"demo": f"models/demo/clip.flac, first {DEMO_SAMPLES} samples; the bundled model, threads 2",
                       "tiny_fp32": "numpy default_rng(2026).normal(0, 0.1, (2, 24653)) float32; "
                                    "the tiny fixture exported fp32 with windows (1, 2), threads 2"},
        }, indent=2) + "\n")
        print(f"recorded {ARRAYS} and {ABOUT}")
        return
    for model, out in got.items():
        reference = recorded(model)
        print(model, " ".join(f"{key} {distance(out[key], reference[key]):.3g}" for key in out),
              f"(tolerance {TOLERANCE[model]:g})")


if __name__ == "__main__":
    main()
