"""The Java binding (bindings/java) against the Python runtime, bit for bit: its JUnit 5 tests run on the
demo model and the tiny fp32 export, on inputs and expected outputs this file writes.

bindings/java/build.sh builds the JNI shim, the jar and the tests into build/java (incrementally: a
fraction of a second when nothing changed), against build/native (built here as tests/test_native.py
does), then runs JUnit's console launcher. The expected outputs are raw little-endian float32 files,
interleaved ([frames][rows]), with a case.properties of shapes and push sizes (see
bindings/java/src/test/java/ai/sameedge/Case.java)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_native import _audio, _cmake_build, _pieces

from build_lock import exclusive
from same_edge import Codec

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "models" / "demo"
BUILD = ROOT / "build" / "native"
THREADS = 2  # the same thread count on both sides (Case.THREADS in Java)
# The JUnit tests of bindings/java/src/test/java: a test per method, or per model for the parameterized ones.
MODELS = 2
EXPECTED_TESTS = 1 + 3 * MODELS + 8 * MODELS + 4 * MODELS + 7


@pytest.fixture(scope="session")
def java_build() -> Path:
    """build/native (CMake, incremental, as `make native`), then build/java through bindings/java/build.sh."""
    for tool in ("cmake", "javac", "jar"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make java` (bindings/java/install-deps.sh installs it)")
    _cmake_build(BUILD)
    with exclusive(BUILD):
        done = subprocess.run(["bash", str(ROOT / "bindings" / "java" / "build.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ROOT / "build" / "java"


def _stream(stream, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts, start = [], 0
    for size in sizes:
        parts.append(stream.push(x[:, start : start + size]))
        start += size
    parts.append(stream.flush())
    return np.concatenate(parts, axis=1)


def _write(path: Path, planar: np.ndarray) -> None:
    """[rows, frames] as interleaved [frames][rows] little-endian float32."""
    np.ascontiguousarray(planar.T, dtype="<f4").tofile(path)


def _write_case(out: Path, model_dir: Path, seed: int) -> None:
    out.mkdir(parents=True)
    with Codec.load(model_dir, threads=THREADS) as codec:
        x = _audio(codec, codec.hop * 11 + 777, seed=seed)  # several windows and an odd tail
        z = codec.encode(x)
        rng = np.random.default_rng(100 + seed)
        encoder_pieces = _pieces(x.shape[1], rng, 3 * codec.hop)
        decoder_pieces = _pieces(z.shape[1], rng, 5)
        stream_z = _stream(codec.stream_encoder(), x, encoder_pieces)
        stream_y = _stream(codec.stream_decoder(), stream_z, decoder_pieces)
        for name, array in (("audio", x), ("latents", z), ("decoded", codec.decode(z)), ("stream_latents", stream_z),
                            ("stream_decoded", stream_y)):
            _write(out / f"{name}.f32", array)
        facts = {"model_dir": model_dir.resolve(), "sample_rate": codec.sample_rate, "channels": codec.channels,
                 "latent_dim": codec.latent_dim, "hop": codec.hop,
                 "encoder_latency_samples": codec.encoder_latency_samples,
                 "decoder_latency_samples": codec.decoder_latency_samples, "model_id": codec.manifest.model_id,
                 "precision": codec.manifest.precision, "encoder_pieces": ",".join(map(str, encoder_pieces)),
                 "decoder_pieces": ",".join(map(str, decoder_pieces))}
    # java.util.Properties escapes: only backslashes can occur here (a Windows path)
    (out / "case.properties").write_text("".join(f"{k}={str(v).replace(chr(92), chr(92) * 2)}\n"
                                                 for k, v in facts.items()))


def test_the_java_binding_passes_its_junit_tests_on_the_demo_and_the_tiny_export(java_build, request, tmp_path):
    import same_edge

    data = tmp_path / "data"
    _write_case(data / "demo", DEMO, seed=3)
    _write_case(data / "tiny-fp32", request.getfixturevalue("export_dir")("fp32"), seed=4)
    header = (ROOT / "native" / "include" / "same_edge.h").read_text()
    litert = re.search(r'#define SE_LITERT_MIN_VERSION "([\d.]+)"', header).group(1)
    command = ["bash", str(ROOT / "bindings" / "java" / "build.sh"), "test", f"-Dsameedge.data={data}",
               f"-Dsameedge.version={same_edge.__version__}", f"-Dsameedge.litert_version={litert}",
               "--details=summary", "--disable-ansi-colors", f"--reports-dir={tmp_path / 'reports'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    summary = done.stdout[-6000:] + done.stderr[-3000:]
    counts = {k: int(n) for n, k in re.findall(r"\[\s*(\d+) tests (found|successful|failed|aborted|skipped)\s*\]",
                                              done.stdout)}
    assert done.returncode == 0, summary
    assert counts == {"found": EXPECTED_TESTS, "successful": EXPECTED_TESTS, "failed": 0, "aborted": 0,
                      "skipped": 0}, summary


def test_the_kotlin_example_in_the_docs_compiles_against_the_jar_and_runs(java_build):
    """docs/EMBEDDING.md's Kotlin block is bindings/java/examples/Roundtrip.kt, built with Debian's
    kotlinc against the jar and run on the demo model."""
    if shutil.which("kotlinc") is None:
        pytest.fail("kotlinc is missing: run `make java` (bindings/java/install-deps.sh installs Debian's kotlin)")
    docs = (ROOT / "docs" / "EMBEDDING.md").read_text()
    blocks = re.findall(r"```kotlin\n(.*?)```", docs, re.S)
    example = (ROOT / "bindings" / "java" / "examples" / "Roundtrip.kt").read_text()
    assert any(block.strip() in example for block in blocks if "ai.sameedge" in block), "the docs' Kotlin example"
    done = subprocess.run(["bash", str(ROOT / "bindings" / "java" / "build.sh"), "kotlin", str(DEMO)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"Kotlin: 11 latent frames, 45056 audio frames, same-edge [\d.]+ on LiteRT", done.stdout)
