"""libsame_edge on 64-bit ARM: the native library, its CLI and its test programs cross-built for
aarch64 (`make native-arm64`: Debian's gcc-aarch64-linux-gnu against the aarch64 ai-edge-litert
wheel's libLiteRt.so) and run under qemu-user, emulating an Arm Neoverse N1.

Emulation runs ARM code, not ARM timings: nothing here measures speed.

Two things make XNNPACK run under qemu-user. The cpuinfo library inside it reads /proc/cpuinfo,
which is the host's (x86) under user-mode emulation, and crashes on it; each program therefore
runs in a private mount namespace (`unshare -m`) with an ARM /proc/cpuinfo bind-mounted over the
real one. And the CPU qemu emulates (`QEMU_CPU`, whose features XNNPACK reads from the auxiliary
vector) is the CPU that /proc/cpuinfo describes. Neoverse N1 (Armv8.2: NEON, FP16 arithmetic,
the dot-product instructions; no i8mm, no SVE) is the core of Graviton 2 and Ampere Altra, and
of the big cores of the phones of 2019-2021 (Cortex-A76/A77 are its siblings): XNNPACK runs the
w8a8 graphs' dynamically quantised int8 matmuls with its dot-product (NEONDOT) kernels on it,
and the float ops with its NEON FMA kernels. A Cortex-A72 (Armv8.0, no dot product) is emulated
once, to show that the int8 kernels are the ones that differ.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_native import DAMAGES, EXPECTED_WORDS, ROOT, _cmake_build, _damaged, _model_copy

from reference_outputs import TOLERANCE, demo_input, distance, tiny_input
from same_edge import Codec, LatentFile

ARM64_BUILD, X86_BUILD = ROOT / "build" / "native-arm64", ROOT / "build" / "native"
ARM64_LITERT = ROOT / "build" / "litert-arm64" / "libLiteRt.so"
TOOLCHAIN = ROOT / "native" / "cmake" / "aarch64-linux-gnu.cmake"
DEMO = ROOT / "models" / "demo"
THREADS = 2

# /proc/cpuinfo of each emulated CPU, as Linux prints it on one: (variant, part, features).
CPUS = {
    "neoverse-n1": ("0x3", "0xd0c", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                                    "lrcpc dcpop asimddp ssbs"),
    "cortex-a72": ("0x0", "0xd08", "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"),
}


@pytest.fixture(scope="session")
def arm64_build() -> Path:
    missing = [tool for tool in ("aarch64-linux-gnu-gcc", "qemu-aarch64", "unshare") if shutil.which(tool) is None]
    if missing or not ARM64_LITERT.is_file():
        pytest.fail(f"the ARM64 toolchain is missing ({', '.join(missing) or ARM64_LITERT}): run `make native-arm64`")
    _cmake_build(ARM64_BUILD, f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}", litert=ARM64_LITERT)
    return ARM64_BUILD


@pytest.fixture(scope="session")
def cpuinfo(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cpuinfo")
    files = {}
    for cpu, (variant, part, features) in CPUS.items():
        files[cpu] = folder / cpu
        files[cpu].write_text("\n".join(
            f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
            f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: 1\n" for i in range(2)))
    return files


def _on_arm64(cpuinfo: dict[str, Path], program: Path | str, *args: str, cpu: str = "neoverse-n1",
              timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run an aarch64 program under qemu-user as `cpu`, with that CPU's /proc/cpuinfo."""
    script = f'mount --bind "{cpuinfo[cpu]}" /proc/cpuinfo && exec qemu-aarch64 "$@"'
    environment = {**os.environ, **(env or {}), "QEMU_CPU": cpu,
                   "LD_LIBRARY_PATH": f"{ARM64_BUILD}:{ARM64_LITERT.parent}"}
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(program), *args], capture_output=True,
                          text=True, timeout=timeout, env=environment)


def _passes(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0 and done.stdout.strip() == "ok", f"exit {done.returncode}: {done.stderr[-4000:]}"


@pytest.fixture(scope="module")
def tiny_fp32(export_dir) -> Path:
    return export_dir("fp32")


@pytest.mark.parametrize("model", ["demo", "tiny-fp32"])
def test_on_arm64_streams_of_random_push_sizes_equal_offline_with_threads_sharing_a_model(arm64_build, cpuinfo,
                                                                                         request, model):
    """The self-test's `check`: random push sizes (one sample among them), planar and interleaved,
    a pushed buffer overwritten at once (reused), three threads streaming on one model, and every
    result equal to offline bit for bit; the error paths."""
    model_dir = DEMO if model == "demo" else request.getfixturevalue("tiny_fp32")
    _passes(_on_arm64(cpuinfo, arm64_build / "se_selftest", "check", str(model_dir)))


@pytest.mark.parametrize("check", ["reset", "abi", "callbacks", "close-with-stream", "sizes", "two-threads",
                                   "errors-per-thread", "sources", "replace"])
def test_on_arm64_the_library_self_test_passes(arm64_build, cpuinfo, tmp_path, check):
    args = {"errors-per-thread": [], "sources": [str(DEMO), str(tmp_path / "packed.apk")],
            "replace": [str(_model_copy(tmp_path))]}.get(check, [str(DEMO)])
    _passes(_on_arm64(cpuinfo, arm64_build / "se_selftest", check, *args))


@pytest.mark.parametrize("damage", DAMAGES)
def test_on_arm64_a_damaged_model_is_refused_with_a_message(arm64_build, cpuinfo, tmp_path, damage):
    done = _on_arm64(cpuinfo, arm64_build / "se_selftest", "open", str(_damaged(tmp_path, damage)))
    assert done.returncode == 3 and done.stdout.startswith("SE_ERR_MODEL: "), done.stdout + done.stderr[-2000:]
    assert EXPECTED_WORDS[damage] in done.stdout


def test_on_arm64_push_flush_and_reset_make_no_allocation_in_the_library(arm64_build, cpuinfo):
    done = _on_arm64(cpuinfo, arm64_build / "se_alloc_count", str(DEMO), str(THREADS))
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    counts = dict(kv.split("=") for kv in done.stdout.split())
    assert counts["library_allocs"] == "0" and counts["statuses_ok"] == "1"


def _cross_compile(compiler: str, source: Path, exe: Path, *flags: str) -> None:
    done = subprocess.run([compiler, *flags, "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(source),
                           f"-I{ARM64_BUILD / 'include'}", f"-L{ARM64_BUILD}", "-lsame_edge",
                           f"-Wl,-rpath-link,{ARM64_LITERT.parent}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # the cross C++ compile is most of its time
def test_on_arm64_the_cpp_wrapper_check_passes(arm64_build, cpuinfo, tmp_path):
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.fail("aarch64-linux-gnu-g++ is missing: run `make native-arm64`")
    exe = tmp_path / "wrapper_check"
    _cross_compile("aarch64-linux-gnu-g++", ROOT / "native" / "tests" / "wrapper_check.cpp", exe, "-std=c++20")
    _passes(_on_arm64(cpuinfo, exe, str(DEMO), env={"TMPDIR": str(tmp_path)}))


def _encode_and_decode_on_arm64(cpuinfo: dict[str, Path], model_dir: Path, audio: np.ndarray, z: np.ndarray,
                                work: Path, cpu: str = "neoverse-n1") -> tuple[np.ndarray, np.ndarray]:
    """same-edge-native on ARM64: the latents of `audio` and the audio of the latents `z`."""
    wav, x86_latents = work / "in.wav", work / "x86.npz"
    sf.write(wav, audio.T, 44100, subtype="FLOAT")  # float WAV: the samples exactly
    done = subprocess.run([str(X86_BUILD / "same-edge-native"), "encode", str(wav), str(x86_latents), "--model",
                           str(model_dir), "--threads", str(THREADS)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(LatentFile.load(x86_latents).latents, z)  # the x86 CLI computes what Codec does
    for args in (("encode", str(wav), str(work / f"{cpu}.npz")), ("decode", str(x86_latents), str(work / f"{cpu}.wav"))):
        done = _on_arm64(cpuinfo, ARM64_BUILD / "same-edge-native", *args, "--model", str(model_dir), "--threads",
                         str(THREADS), cpu=cpu)
        assert done.returncode == 0, done.stderr[-2000:]
    audio_out = sf.read(work / f"{cpu}.wav", dtype="float32", always_2d=True)[0].T
    return LatentFile.load(work / f"{cpu}.npz").latents, audio_out


@pytest.mark.parametrize("model", ["demo", "tiny_fp32"])
def test_arm64_outputs_are_the_x86_outputs_within_the_cross_cpu_tolerance(arm64_build, cpuinfo, request, tmp_path,
                                                                          model):
    """Not bit-identical across instruction sets (other kernels, other rounding): held to the
    tolerance tests/reference_outputs.py derives for a change of CPU family on x86 (AVX2 against
    qemu's SandyBridge: fp32 drift 1.9e-7 / 5.5e-7, tolerance 2e-6, below any moved weight; w8a8
    drift 8.0e-4 / 2.1e-3, tolerance 1e-2). Measured on the emulated Neoverse N1 against an AVX2
    Zen 3: tiny fp32 1.6e-7 / 6.8e-7 (SNR 137 / 130 dB), demo w8a8 1.6e-3 / 7.5e-4 (56 / 73 dB):
    rounding, the size of x86's own drift between kernels, not a different computation."""
    model_dir = DEMO if model == "demo" else request.getfixturevalue("tiny_fp32")
    codec = Codec.load(model_dir, threads=THREADS)
    audio = demo_input(codec.sample_rate) if model == "demo" else tiny_input()
    z = codec.encode(audio)
    y = codec.decode(z)[:, : audio.shape[1]]  # the CLI writes the input's length
    z_arm, y_arm = _encode_and_decode_on_arm64(cpuinfo, model_dir, audio, z, tmp_path)
    assert distance(z_arm, z) <= TOLERANCE[model]
    assert distance(y_arm, y) <= TOLERANCE[model]


def test_the_emulated_neoverse_n1_runs_the_dot_product_int8_kernels(arm64_build, cpuinfo, tiny_fp32, tmp_path):
    """The same w8a8 graph on a Cortex-A72 (no dot product) computes other latents, while the fp32
    graph computes the same bits on both: XNNPACK chose other int8 kernels by the CPU's features,
    and the same float ones."""
    outputs = {}
    for name, model_dir in (("demo", DEMO), ("tiny_fp32", tiny_fp32)):
        codec = Codec.load(model_dir, threads=THREADS)
        audio = (demo_input(codec.sample_rate) if name == "demo" else tiny_input())[:, : 6 * codec.hop]
        z = codec.encode(audio)
        for cpu in CPUS:
            work = tmp_path / f"{name}-{cpu}"
            work.mkdir()
            outputs[name, cpu] = _encode_and_decode_on_arm64(cpuinfo, model_dir, audio, z, work, cpu)[0]
    assert not np.array_equal(outputs["demo", "neoverse-n1"], outputs["demo", "cortex-a72"])
    assert distance(outputs["demo", "neoverse-n1"], outputs["demo", "cortex-a72"]) <= TOLERANCE["demo"]
    assert np.array_equal(outputs["tiny_fp32", "neoverse-n1"], outputs["tiny_fp32", "cortex-a72"])
