"""manifest.json agrees with the graphs beside it, and both runtimes judge a manifest alike.

Each exported graph embeds its manifest (metadata ``same_edge.manifest``, without the graphs' own
sizes, hashes, op counts and delegation). The Python runtime and libsame_edge refuse a
manifest.json that differs from what a graph embeds, naming the field, a graph that embeds none,
and a graph whose signatures are not the manifest's. tests/data/manifest_cases.json is one table
of manifest cases (strict JSON, and fields that contradict the graphs), run through the Python
loader, libsame_edge, and libsame_edge under ASan and UBSan."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_native import (
    ASAN_BUILD,
    ASAN_FLAGS,
    BUILD,
    DEMO,
    SE_ERR_MODEL,
    SE_OK,
    Native,
    _cmake_build,
    _open_status,
    _sanitized_env,
)

from same_edge import Codec, ModelDirError
from same_edge.flatbuffer import _model, metadata_entry
from same_edge.manifest import METADATA_KEY

CASES = json.loads((Path(__file__).parent / "data" / "manifest_cases.json").read_text(encoding="utf-8"))["cases"]
PLACEHOLDER = "\x01case\x01"  # the value at a case's `at`, until its raw text replaces it


@pytest.fixture(scope="module")
def native() -> Native:
    _cmake_build(BUILD)
    return Native(BUILD / "libsame_edge.so")


@pytest.fixture(scope="module")
def asan_build() -> Path:
    _cmake_build(ASAN_BUILD, *ASAN_FLAGS)
    return ASAN_BUILD


def _model_dir(tmp_path: Path, manifest: bytes | dict, graphs: dict[str, bytes] | None = None) -> Path:
    """A model directory: this manifest, these graphs (by default links to the demo's)."""
    d = tmp_path / "model"
    d.mkdir()
    for side in ("encoder", "decoder"):
        if graphs and side in graphs:
            (d / f"{side}.tflite").write_bytes(graphs[side])
        else:
            os.symlink(DEMO / f"{side}.tflite", d / f"{side}.tflite")
    (d / "manifest.json").write_bytes(manifest if isinstance(manifest, bytes) else json.dumps(manifest, indent=2).encode())
    return d


def _demo_manifest() -> dict:
    return json.loads((DEMO / "manifest.json").read_text())


def _set(raw: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        raw = raw[key]
    raw[last] = value


def _case_manifest(case: dict) -> bytes:
    raw = _demo_manifest()
    if "at" not in case:
        return (DEMO / "manifest.json").read_bytes()
    _set(raw, case["at"], PLACEHOLDER)
    text = json.dumps(raw, indent=2).encode()
    placeholder = json.dumps(PLACEHOLDER).encode()
    assert text.count(placeholder) == 1
    new = bytes.fromhex(case["raw_hex"]) if "raw_hex" in case else case["raw"].encode()
    return text.replace(placeholder, new)


def _python_verdict(model_dir: Path) -> tuple[str, str]:
    try:
        Codec.load(model_dir, threads=1).close()
    except ModelDirError as e:
        return "refuse", str(e)
    return "accept", ""


def _c_verdict(native: Native, model_dir: Path) -> tuple[str, str]:
    status, message = _open_status(native, model_dir)
    assert status in (SE_OK, SE_ERR_MODEL), message
    return ("accept" if status == SE_OK else "refuse"), message


def _asan_verdict(asan_build: Path, model_dir: Path) -> tuple[str, str]:
    done = subprocess.run([str(asan_build / "se_selftest"), "open", str(model_dir)], capture_output=True, text=True,
                          env=_sanitized_env(), timeout=300)
    assert done.returncode in (0, 3), done.stdout + done.stderr[-4000:]  # not a sanitizer's report
    status, _, message = done.stdout.partition(":")
    assert status in ("SE_OK", "SE_ERR_MODEL"), done.stdout
    return ("accept" if status == "SE_OK" else "refuse"), message.strip()


def _check_verdict(case: dict, verdict: tuple[str, str], runtime: str) -> None:
    decision, message = verdict
    assert decision == case["expect"], f"{runtime}: {message}"
    if decision == "refuse":
        assert case["names"] in message and "\n" not in message, f"{runtime}: {message}"


def _slug(case: dict) -> str:
    return re.sub(r"\W+", "-", case["name"]).strip("-")


# -- one table, both validators -------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_slug)
def test_python_and_c_accept_or_refuse_each_manifest_case_alike(native, tmp_path, case):
    model_dir = _model_dir(tmp_path, _case_manifest(case))
    _check_verdict(case, _python_verdict(model_dir), "python")
    _check_verdict(case, _c_verdict(native, model_dir), "c")


@pytest.mark.parametrize("case", CASES, ids=_slug)
def test_each_manifest_case_is_judged_cleanly_under_asan_and_ubsan(asan_build, tmp_path, case):
    _check_verdict(case, _asan_verdict(asan_build, _model_dir(tmp_path, _case_manifest(case))), "c-asan")


# -- the manifest against what the graphs embed ---------------------------------------------------


CONTRADICTIONS = [("encoder.start_skip_frames", 2, 1), ("decoder.start_skip_samples", 4351, 4352),
                  ("model.sample_rate", 48000, 44100), ("precision", "fp32", "w8a8")]


@pytest.mark.parametrize(("field", "edited", "exported"), CONTRADICTIONS, ids=[c[0] for c in CONTRADICTIONS])
def test_a_manifest_field_that_contradicts_the_graphs_is_refused_by_both_runtimes_naming_it(native, tmp_path, field,
                                                                                              edited, exported):
    raw = _demo_manifest()
    _set(raw, field, edited)
    model_dir = _model_dir(tmp_path, raw)
    said = f"manifest.json says {field} {json.dumps(edited)}, encoder.tflite embeds {json.dumps(exported)}"
    for runtime, (decision, message) in (("python", _python_verdict(model_dir)), ("c", _c_verdict(native, model_dir))):
        assert decision == "refuse" and said in message, f"{runtime}: {message}"


def _rewritten_graph(side: str, edit: Callable[[bytearray], None]) -> bytes:
    data = bytearray((DEMO / f"{side}.tflite").read_bytes())
    edit(data)
    return bytes(data)


def _rehashed(raw: dict, graphs: dict[str, bytes]) -> dict:
    for side, data in graphs.items():
        raw[side]["bytes"], raw[side]["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    return raw


def test_a_graph_that_embeds_no_manifest_is_refused_by_both_runtimes(native, tmp_path):
    def rename_the_entry(data: bytearray) -> None:  # same length, so nothing else in the file moves
        name = METADATA_KEY.encode()
        assert data.count(name) == 1
        data[data.find(name) : data.find(name) + len(name)] = name[:-1] + b"X"

    graphs = {"encoder": _rewritten_graph("encoder", rename_the_entry)}
    model_dir = _model_dir(tmp_path, _rehashed(_demo_manifest(), graphs), graphs)
    for runtime, (decision, message) in (("python", _python_verdict(model_dir)), ("c", _c_verdict(native, model_dir))):
        assert decision == "refuse" and "encoder.tflite embeds no manifest" in message, f"{runtime}: {message}"


def _with_embedded(side: str, edit: Callable[[dict], None]) -> bytes:
    """The demo's graph with its embedded manifest edited in place (the edit must keep its length)."""

    def patch(data: bytearray) -> None:
        payload = metadata_entry(bytes(data), METADATA_KEY)
        embedded = json.loads(payload)
        edit(embedded)
        new = json.dumps(embedded).encode()  # export's own formatting
        assert len(new) == len(payload) and data.count(payload) == 1
        at = data.find(payload)
        data[at : at + len(payload)] = new

    return _rewritten_graph(side, patch)


def _latent_dim_128(raw: dict) -> None:
    """A self-consistent description of a model with 128 latent channels (the demo has 256)."""
    raw["model"]["latent_dim"] = raw["model"]["config"]["latent_dim"] = 128
    for side in ("encoder", "decoder"):
        for sig in raw[side]["signatures"].values():
            for tensors in sig.values():
                if "latents" in tensors:
                    tensors["latents"][0] = 128


def test_a_graph_whose_signatures_are_not_the_manifests_is_refused_by_both_runtimes(native, tmp_path):
    """manifest.json and the embedded manifests agree with each other, and not with the graphs' tensors."""
    graphs = {side: _with_embedded(side, _latent_dim_128) for side in ("encoder", "decoder")}
    raw = _rehashed(_demo_manifest(), graphs)
    _latent_dim_128(raw)
    model_dir = _model_dir(tmp_path, raw, graphs)
    for runtime, (decision, message) in (("python", _python_verdict(model_dir)), ("c", _c_verdict(native, model_dir))):
        assert decision == "refuse" and "does not match the manifest" in message and "latents" in message, \
            f"{runtime}: {message}"


def _metadata_fields(data: bytes) -> tuple[int, int, int]:
    """Byte positions of the manifest entry's buffer index, and of its buffer's offset and size."""
    _, model = _model(data)
    entry = next(md for md in model.tables(6, "metadata") if md.string(0) == METADATA_KEY.encode())
    buffer = model.tables(4, "buffers")[entry.scalar(1, "I")]
    return entry.pos + entry.offsets[1], buffer.pos + buffer.offsets[1], buffer.pos + buffer.offsets[2]


@pytest.mark.parametrize("damage", ["buffer-index-past-the-buffers", "offset-past-the-end", "size-past-the-end"])
def test_a_graph_whose_embedded_manifest_lies_outside_the_file_is_refused_cleanly_under_asan(asan_build, tmp_path,
                                                                                              damage):
    def damaged(data: bytearray) -> None:
        index_at, offset_at, size_at = _metadata_fields(bytes(data))
        if damage == "buffer-index-past-the-buffers":
            data[index_at : index_at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
        elif damage == "offset-past-the-end":
            data[offset_at : offset_at + 8] = (len(data) - 100).to_bytes(8, "little")
        else:
            data[size_at : size_at + 8] = (1 << 62).to_bytes(8, "little")

    graphs = {"encoder": _rewritten_graph("encoder", damaged)}
    model_dir = _model_dir(tmp_path, _rehashed(_demo_manifest(), graphs), graphs)
    decision, message = _asan_verdict(asan_build, model_dir)
    assert decision == "refuse" and "encoder.tflite is not a .tflite flatbuffer (its metadata lies outside" in message, message
    assert _python_verdict(model_dir)[0] == "refuse"
