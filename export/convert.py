"""``same-edge export``: a SAME checkpoint -> ``encoder.tflite``, ``decoder.tflite``, manifest, fidelity.

Each graph holds one signature per window size (``encode_1``, ``encode_4``, ...) plus a flush
signature, all sharing one copy of the weights; see ``export.graphs`` for what they compute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from same_edge.audio import read_audio
from same_edge.graph import sha256_file, stderr_silenced
from same_edge.manifest import (
    GRAPH_FILES,
    MANIFEST_NAME,
    METADATA_KEY,
    PRECISIONS,
    SIGNATURE_PREFIX,
    GraphSpec,
    Manifest,
    ModelSpec,
    SignatureSpec,
    Source,
)
from same_edge.metrics import snr_db

from .checkpoint import load_model
from .delegation import check_delegation
from .graphs import geometry, graph_modules, signature_inputs
from .model import SameAutoencoder
from .music import synth_music
from .quantize import check_ops, inspect_ops, quantize

DEFAULT_WINDOWS = (1, 4, 16)
FIDELITY_NAME = "fidelity.json"
SYNTHETIC_SOURCE = "synthetic music (same_edge_export.music, 12 s)"


def signature_names(side: str, windows: Sequence[int]) -> list[str]:
    prefix = SIGNATURE_PREFIX[side]
    return [f"{prefix}_{w}" for w in sorted(windows)] + [f"{prefix}_flush"]


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


def _signatures(model: SameAutoencoder, side: str, windows: Sequence[int]) -> dict[str, SignatureSpec]:
    """Each signature's named input and output shapes, from a run of its module."""
    window, flush = graph_modules(model)[side]
    table = {}
    with torch.no_grad():
        for name in signature_names(side, windows):
            inputs = signature_inputs(model, name)
            outputs = (flush if name.endswith("flush") else window)(**inputs)
            table[name] = SignatureSpec({k: tuple(v.shape) for k, v in inputs.items()},
                                        {k: tuple(v.shape) for k, v in outputs.items()})
    return table


def build_manifest(model: SameAutoencoder, precision: str, windows: Sequence[int], config_path: Path,
                   checkpoint_path: Path) -> Manifest:
    """The model's description, before its graph files exist (their sizes and hashes are filled in
    by ``write_model_dir``)."""
    cfg, g = model.config, geometry(model)
    graphs = {
        "encoder": GraphSpec("encoder", GRAPH_FILES["encoder"], 0, "", tuple(g["encoder_state_shape"]),
                             g["encoder_start_skip_frames"], g["encoder_flush_frames"],
                             _signatures(model, "encoder", windows)),
        "decoder": GraphSpec("decoder", GRAPH_FILES["decoder"], 0, "", tuple(g["decoder_state_shape"]),
                             g["decoder_start_skip_samples"], g["decoder_flush_samples"],
                             _signatures(model, "decoder", windows), tuple(g["decoder_context_shape"])),
    }
    return Manifest(
        ModelSpec(cfg.sample_rate, cfg.channels, cfg.latent_dim, cfg.hop, g["frames_per_chunk"], g["chunk_samples"],
                  cfg.to_dict()),
        precision, tuple(sorted(windows)), graphs["encoder"], graphs["decoder"],
        Source(config_path.name, sha256_file(config_path), checkpoint_path.name, sha256_file(checkpoint_path)),
        _versions(),
    )


def measure_fidelity(model: SameAutoencoder, model_dir: Path, audio: np.ndarray, source: str) -> dict[str, Any]:
    """SNR (dB) and max abs error of each exported graph against the PyTorch fp32 model, on ``audio``."""
    from same_edge import Codec

    codec = Codec.load(model_dir)
    with torch.no_grad():
        ref_latents = model.encode(torch.from_numpy(audio)[None])[0].numpy()[:, : -(-audio.shape[1] // codec.hop)]
        ref_audio = model.decode(torch.from_numpy(ref_latents)[None])[0].numpy()[:, : ref_latents.shape[1] * codec.hop]
    latents = codec.encode(audio)
    decoded = codec.decode(ref_latents)
    codec.close()
    return {
        "signal": source,
        "seconds": audio.shape[1] / codec.sample_rate,
        "reference": "PyTorch fp32 whole-sequence model",
        "encoder": {"snr_db": snr_db(ref_latents, latents), "max_abs_error": float(np.abs(ref_latents - latents).max()),
                    "max_abs_reference": float(np.abs(ref_latents).max())},
        "decoder": {"snr_db": snr_db(ref_audio, decoded), "max_abs_error": float(np.abs(ref_audio - decoded).max()),
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
    fidelity_source: str = SYNTHETIC_SOURCE,
) -> Manifest:
    """Quantise fp32 graphs to ``precision``, check their ops, embed the manifest, and write
    ``out_dir`` (graphs, ``manifest.json``, ``fidelity.json``) all at once or not at all."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    out_dir = Path(out_dir)
    manifest = build_manifest(model, precision, windows, Path(config_path), Path(checkpoint_path))
    embedded = json.dumps(manifest.to_dict(with_files=False)).encode()
    graphs, specs = {}, {}
    for side, data in float_graphs.items():
        # Embed before quantising: the quantiser keeps metadata, and may store large models'
        # weights past the flatbuffer, which a re-pack would not carry over.
        data = quantize(embed_metadata(data, METADATA_KEY, embedded), precision)
        report = inspect_ops(data)
        check_ops(report, precision, GRAPH_FILES[side])
        graphs[side] = data
        specs[side] = replace(manifest.graph(side), bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), ops=report)
    manifest = replace(manifest, encoder=specs["encoder"], decoder=specs["decoder"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name[:200]}.", dir=out_dir.parent))
    try:
        for side, data in graphs.items():
            (staging / GRAPH_FILES[side]).write_bytes(data)
        # Every op of every signature runs in XNNPACK, or no model directory (export.delegation).
        manifest = replace(manifest, **{side: replace(manifest.graph(side), delegation=check_delegation(
            staging / GRAPH_FILES[side])) for side in graphs})
        (staging / MANIFEST_NAME).write_text(manifest.to_json())
        audio = synth_music() if fidelity_audio is None else fidelity_audio
        fidelity = measure_fidelity(model, staging, audio, fidelity_source)
        fidelity["precision"] = precision
        (staging / FIDELITY_NAME).write_text(json.dumps(fidelity, indent=2) + "\n")
        out_dir.mkdir(exist_ok=True)
        # Graphs first, manifest last: a reader never pairs a new manifest with old graphs.
        for name in (*GRAPH_FILES.values(), FIDELITY_NAME, MANIFEST_NAME):
            os.replace(staging / name, out_dir / name)
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
    fidelity_audio_path: str | Path | None = None,
    progress: bool = True,
) -> Manifest:
    """Export a SAME checkpoint to ``out_dir``; returns its manifest. Writes all files or none.

    Fidelity is measured on ``fidelity_audio`` ([C, T] float32 at the model's rate), else on the
    file ``fidelity_audio_path``, else on built-in synthetic music."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    windows = _check_windows(windows)
    logging.getLogger("absl").setLevel(logging.ERROR)
    steps = ["load checkpoint", "convert encoder", "convert decoder", "quantise, write, measure fidelity"]
    with tqdm(total=len(steps), disable=not progress, unit="step",
              bar_format="{desc}: {n}/{total} steps [{elapsed}]") as bar:
        bar.set_description(steps[0])
        model = load_model(config_path, checkpoint_path)
        source = SYNTHETIC_SOURCE
        if fidelity_audio is None and fidelity_audio_path is not None:
            fidelity_audio = read_audio(fidelity_audio_path, model.config.sample_rate, model.config.channels,
                                        downmix=True)[0]
            source = str(fidelity_audio_path)
        elif fidelity_audio is not None:
            source = "audio given by the caller"
        graphs = {}
        for i, side in enumerate(("encoder", "decoder"), start=1):
            bar.update(1)
            bar.set_description(steps[i])
            graphs[side] = convert_graph(model, side, windows)
        bar.update(1)
        bar.set_description(steps[3])
        manifest = write_model_dir(model, graphs, out_dir, precision, windows, Path(config_path),
                                   Path(checkpoint_path), fidelity_audio, source)
        bar.update(1)
    return manifest
