"""Shared fixtures: the tiny SAME fixture (official golden outputs), exported graphs, torch helpers."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from build_lock import exclusive

DATA = Path(__file__).parent / "data"
TINY = DATA / "same-tiny"
TINY_CONFIG = TINY / "model_config.json"
TINY_CHECKPOINT = TINY / "model.safetensors"
SAME_S_CONFIG = Path(__file__).parent.parent / "models" / "same-s" / "model_config.json"
TINY_L = DATA / "same-l-tiny"  # a tiny SAME-L, golden outputs of the official code (tests/official_golden.py)
TINY_L_CONFIG, TINY_L_CHECKPOINT = TINY_L / "model_config.json", TINY_L / "model.safetensors"
GOLDEN_CASES = (0, 1, 2)
# fp32 graphs against the PyTorch model and the official golden outputs, max |error| / max |ref|:
# measured 1.3e-7 to 1.0e-6 (tiny fixture); held to 10x that.
GRAPH_TOLERANCE = 1e-5
TEST_WINDOWS = (1, 2)  # small windows keep the tiny exports quick; 2 still exercises window choice
# SAME-L's windows are frames: 1 is less than the 2w frames a block carries, 4 more.
TEST_L_WINDOWS = (1, 4)

try:  # the fuzz tests' fixed budget: the same examples on every run (no example database, no timing flakes)
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, database=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=2000, derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a dev extra; only tests/test_fuzz.py needs it
    pass


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(TINY / "golden.npz") as g:
        return {k: g[k] for k in g}


@pytest.fixture(scope="session")
def tiny_model():
    from same_edge_export import load_model

    return load_model(TINY_CONFIG, TINY_CHECKPOINT)


def _conversion_key(config: Path, checkpoint: Path, windows: tuple[int, ...]) -> str:
    """What a tiny fixture's conversion depends on: the exporter's sources, the fixture and the tools."""
    from importlib import metadata

    root = Path(__file__).parent.parent
    h = hashlib.sha256(repr((windows, [metadata.version(p) for p in ("torch", "litert-torch", "ai-edge-litert")]))
                       .encode())
    for path in sorted([*root.glob("same_edge_export/*.py"), config, checkpoint]):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def _cached_float_graphs(model, name: str, config: Path, checkpoint: Path, windows: tuple[int, ...]) -> dict[str, bytes]:
    """fp32 flatbuffers of both sides, converted once, and kept in build/test-cache for the next run
    while nothing they depend on changes (the conversion is most of `make check`'s first minute)."""
    from same_edge_export.convert import convert_graph

    cache = Path(__file__).parent.parent / "build" / "test-cache" / f"{name}-{_conversion_key(config, checkpoint, windows)}"
    # Each side under its own lock, the two workers of `make check` starting from opposite sides: on
    # a cold cache they convert one side each, at once.
    sides = ["encoder", "decoder"]
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        sides.reverse()
    for side in sides:
        path = cache / f"{side}.tflite"
        with exclusive(path):
            if not path.is_file():  # written whole, then renamed: a stopped run leaves no half file
                path.with_suffix(".tmp").write_bytes(convert_graph(model, side, windows))
                os.replace(path.with_suffix(".tmp"), path)
    return {side: (cache / f"{side}.tflite").read_bytes() for side in ("encoder", "decoder")}


@pytest.fixture(scope="session")
def tiny_float_graphs(tiny_model) -> dict[str, bytes]:
    return _cached_float_graphs(tiny_model, "tiny-fp32", TINY_CONFIG, TINY_CHECKPOINT, TEST_WINDOWS)


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory, tiny_model, tiny_float_graphs):
    """Returns a function precision -> model directory, written once per precision."""
    from same_edge_export.convert import write_model_dir

    made: dict[str, Path] = {}

    def make(precision: str) -> Path:
        if precision not in made:
            out = tmp_path_factory.mktemp(f"tiny-{precision}")
            write_model_dir(tiny_model, dict(tiny_float_graphs), out, precision, TEST_WINDOWS,
                            TINY_CONFIG, TINY_CHECKPOINT)
            made[precision] = out
        return made[precision]

    return make


@pytest.fixture(scope="session")
def tiny_l_model():
    from same_edge_export import load_model

    return load_model(TINY_L_CONFIG, TINY_L_CHECKPOINT)


@pytest.fixture(scope="session")
def export_l_dir(tmp_path_factory, tiny_l_model):
    """The tiny SAME-L's ``export_dir``: precision -> model directory, written once per precision."""
    from same_edge_export.convert import write_model_dir

    graphs = _cached_float_graphs(tiny_l_model, "tiny-l-fp32", TINY_L_CONFIG, TINY_L_CHECKPOINT, TEST_L_WINDOWS)
    made: dict[str, Path] = {}

    def make(precision: str) -> Path:
        if precision not in made:
            out = tmp_path_factory.mktemp(f"tiny-l-{precision}")
            write_model_dir(tiny_l_model, dict(graphs), out, precision, TEST_L_WINDOWS, TINY_L_CONFIG, TINY_L_CHECKPOINT)
            made[precision] = out
        return made[precision]

    return make


@pytest.fixture
def tiny_copy(tmp_path) -> Path:
    """A writable copy of the tiny fixture directory."""
    dst = tmp_path / "same-tiny"
    shutil.copytree(TINY, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def benchmark_module(name: str):
    """A module of benchmarks/ (which is not a package: its modules import each other by name)."""
    import importlib
    import sys

    path = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, path)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(path)


def rel_err(ref: np.ndarray, test: np.ndarray) -> float:
    """max |ref - test| / max |ref|."""
    return float(np.abs(ref - test).max() / np.abs(ref).max())


def pytest_unconfigure(config: pytest.Config) -> None:
    """LiteRT logs its accelerators' destruction at INFO level on fd 2 as the process exits, after
    pytest has restored its own descriptors: silence fd 2 at exit, once the summary is out."""
    atexit.register(lambda: os.dup2(os.open(os.devnull, os.O_WRONLY), 2))
