"""``same-edge export``: a SAME checkpoint -> ``encoder.tflite``, ``decoder.tflite``, manifest, fidelity.

Each graph holds one signature per window size (``encode_1``, ``encode_4``, ...) plus a flush
signature, all sharing one copy of the weights; see ``export.graphs`` for what they compute.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from same_edge.graph import stderr_silenced
from same_edge.manifest import FORMAT, GRAPH_FILES, MANIFEST_NAME, METADATA_KEY

from .checkpoint import load_model, sha256_file
from .graphs import geometry, graph_modules, signature_inputs
from .model import SameAutoencoder
from .music import synth_music
from .quantize import PRECISIONS, check_ops, inspect_ops, quantize

DEFAULT_WINDOWS = (1, 4, 16)
_PREFIX = {"encoder": "encode", "decoder": "decode"}


def signature_names(side: str, windows: Sequence[int]) -> list[str]:
    return [f"{_PREFIX[side]}_{w}" for w in sorted(windows)] + [f"{_PREFIX[side]}_flush"]


def convert_graph(model: SameAutoencoder, side: str, windows: Sequence[int]) -> bytes:
    """fp32 ``.tflite`` flatbuffer of one side, one signature per window plus the flush."""
    with stderr_silenced():  # its import logs torchao and pytree notices on fd 2
        import litert_torch
        from litert_torch import progress as litert_progress

    litert_progress.console.quiet = True  # our own progress bar reports the stages
    window, flush = graph_modules(model)[side]
    converter = None
    for name in signature_names(side, windows):
        module = flush if name.endswith("flush") else window
        kwargs = signature_inputs(model, name)
        converter = (litert_torch if converter is None else converter).signature(name, module, sample_kwargs=kwargs)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), stderr_silenced():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "graph.tflite"
        converter.convert().export(str(path))
        return path.read_bytes()


def embed_metadata(model: bytes, key: str, payload: bytes) -> bytes:
    """Add (or replace) a named metadata buffer in a ``.tflite`` flatbuffer."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(model, 0)
    m.metadata = [md for md in (m.metadata or []) if md.name != key.encode()]
    buf = schema.BufferT()
    buf.data = np.frombuffer(payload, dtype=np.uint8)
    m.buffers.append(buf)
    md = schema.MetadataT()
    md.name = key
    md.buffer = len(m.buffers) - 1
    m.metadata.append(md)
    builder = flatbuffers.Builder(len(model) + len(payload) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("same-edge", "torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _signature_table(model: SameAutoencoder, side: str, windows: Sequence[int]) -> dict[str, Any]:
    window, flush = graph_modules(model)[side]
    table = {}
    with torch.no_grad():
        for name in signature_names(side, windows):
            inputs = signature_inputs(model, name)
            outputs = (flush if name.endswith("flush") else window)(**inputs)
            size = name.rsplit("_", 1)[1]
            table[name] = {
                "chunks": None if size == "flush" else int(size),
                "inputs": {k: list(v.shape) for k, v in inputs.items()},
                "outputs": {k: list(v.shape) for k, v in outputs.items()},
            }
    return table


def build_manifest(
    model: SameAutoencoder, precision: str, windows: Sequence[int], config_path: Path, checkpoint_path: Path
) -> dict[str, Any]:
    """The self-description written to ``manifest.json`` and embedded in both graphs."""
    cfg, g = model.config, geometry(model)
    return {
        "format": FORMAT,
        "model": {
            "sample_rate": cfg.sample_rate,
            "channels": cfg.channels,
            "patch_size": cfg.patch_size,
            "stride": cfg.stride,
            "hop": cfg.hop,
            "latent_dim": cfg.latent_dim,
            "latent_rate_hz": cfg.sample_rate / cfg.hop,
            "frames_per_chunk": g["frames_per_chunk"],
            "chunk_samples": g["chunk_samples"],
            "config": cfg.to_dict(),
        },
        "precision": precision,
        "precision_description": PRECISIONS[precision],
        "windows": sorted(windows),
        "encoder": {
            "file": GRAPH_FILES["encoder"],
            "state_shape": g["encoder_state_shape"],
            "start_skip_frames": g["encoder_start_skip_frames"],
            "flush_frames": g["encoder_flush_frames"],
            "signatures": _signature_table(model, "encoder", windows),
        },
        "decoder": {
            "file": GRAPH_FILES["decoder"],
            "state_shape": g["decoder_state_shape"],
            "context_shape": g["decoder_context_shape"],
            "start_skip_samples": g["decoder_start_skip_samples"],
            "flush_samples": g["decoder_flush_samples"],
            "signatures": _signature_table(model, "decoder", windows),
        },
        "source": {
            "config_file": config_path.name,
            "config_sha256": sha256_file(config_path),
            "checkpoint_file": checkpoint_path.name,
            "checkpoint_sha256": sha256_file(checkpoint_path),
        },
        "tools": _versions(),
    }


def _snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    err = float(np.sum((ref.astype(np.float64) - test) ** 2))
    sig = float(np.sum(ref.astype(np.float64) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(sig / err)


def measure_fidelity(model: SameAutoencoder, model_dir: Path, audio: np.ndarray, source: str) -> dict[str, Any]:
    """SNR (dB) and max abs error of each exported graph against the PyTorch fp32 model, on ``audio``."""
    from same_edge import Codec

    codec = Codec.load(model_dir)
    with torch.no_grad():
        ref_latents = model.encode(torch.from_numpy(audio)[None])[0].numpy()[:, : -(-audio.shape[1] // codec.hop)]
        ref_audio = model.decode(torch.from_numpy(ref_latents)[None])[0].numpy()[:, : ref_latents.shape[1] * codec.hop]
    latents = codec.encode(audio)
    decoded = codec.decode(ref_latents)
    return {
        "signal": source,
        "seconds": audio.shape[1] / codec.sample_rate,
        "reference": "PyTorch fp32 whole-sequence model",
        "encoder": {"snr_db": _snr_db(ref_latents, latents), "max_abs_error": float(np.abs(ref_latents - latents).max()),
                    "max_abs_reference": float(np.abs(ref_latents).max())},
        "decoder": {"snr_db": _snr_db(ref_audio, decoded), "max_abs_error": float(np.abs(ref_audio - decoded).max()),
                    "max_abs_reference": float(np.abs(ref_audio).max()),
                    "note": "decoder fed the fp32 reference latents"},
    }


def _check_windows(windows: Sequence[int]) -> list[int]:
    out = sorted(set(int(w) for w in windows))
    if not out or out[0] != 1:
        raise ValueError("window sizes must include 1 (the streaming window and every stream's tail)")
    return out


def write_model_dir(
    model: SameAutoencoder,
    float_graphs: dict[str, bytes],
    out_dir: str | Path,
    precision: str,
    windows: Sequence[int],
    config_path: Path,
    checkpoint_path: Path,
    fidelity_audio: np.ndarray | None = None,
    fidelity_source: str = "synthetic music (same_edge_export.music, 12 s)",
    progress: bool = True,
) -> dict[str, Any]:
    """Quantise fp32 graphs to ``precision``, check their ops, embed the manifest, and write
    ``out_dir`` (graphs, ``manifest.json``, ``fidelity.json``) all at once or not at all."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    out_dir = Path(out_dir)
    manifest = build_manifest(model, precision, windows, Path(config_path), Path(checkpoint_path))
    graphs, reports = {}, {}
    for side, data in float_graphs.items():
        # Embed before quantising: the quantiser keeps metadata, and may store large models'
        # weights past the flatbuffer, which a re-pack would not carry over.
        data = quantize(embed_metadata(data, METADATA_KEY, json.dumps(manifest).encode()), precision)
        reports[side] = inspect_ops(data)
        check_ops(reports[side], precision, GRAPH_FILES[side])
        graphs[side] = data
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for side, data in graphs.items():
            (staging / GRAPH_FILES[side]).write_bytes(data)
            manifest[side]["sha256"] = sha256_file(staging / GRAPH_FILES[side])
            manifest[side]["bytes"] = len(data)
            manifest[side]["ops"] = reports[side]
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        audio = synth_music() if fidelity_audio is None else fidelity_audio
        fidelity = measure_fidelity(model, staging, audio, fidelity_source)
        fidelity["precision"] = precision
        (staging / "fidelity.json").write_text(json.dumps(fidelity, indent=2) + "\n")
        out_dir.mkdir(exist_ok=True)
        for f in staging.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def export(
    config_path: str | Path,
    checkpoint_path: str | Path,
    out_dir: str | Path,
    precision: str = "fp32",
    windows: Sequence[int] = DEFAULT_WINDOWS,
    fidelity_audio: np.ndarray | None = None,
    fidelity_source: str = "synthetic music (same_edge_export.music, 12 s)",
    progress: bool = True,
) -> dict[str, Any]:
    """Export a SAME checkpoint to ``out_dir``; returns the manifest. Writes all files or none."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    windows = _check_windows(windows)
    logging.getLogger("absl").setLevel(logging.ERROR)
    steps = ["load checkpoint", "convert encoder", "convert decoder", "quantise, write, measure fidelity"]
    with tqdm(total=len(steps), disable=not progress, unit="step",
              bar_format="{desc}: {n}/{total} steps [{elapsed}]") as bar:
        bar.set_description(steps[0])
        model = load_model(config_path, checkpoint_path)
        graphs = {}
        for i, side in enumerate(("encoder", "decoder"), start=1):
            bar.update(1)
            bar.set_description(steps[i])
            graphs[side] = convert_graph(model, side, windows)
        bar.update(1)
        bar.set_description(steps[3])
        manifest = write_model_dir(model, graphs, out_dir, precision, windows, Path(config_path),
                                   Path(checkpoint_path), fidelity_audio, fidelity_source, progress)
        bar.update(1)
    return manifest
