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
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
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
    SIDES,
    GraphSpec,
    Manifest,
    ModelSpec,
    SignatureSpec,
    Source,
)
from same_edge.metrics import snr_db

from .cache import ConversionCache, conversion_key
from .checkpoint import load_model
from .config import ConfigError
from .delegation import check_delegation
from .graphs import geometry, graph_modules, signature_inputs, signature_names
from .model import SameAutoencoder, folded_copy
from .music import synth_music
from .phases import PhaseTimer, litert_phases
from .quantize import check_ops, inspect_ops, quantize

DEFAULT_WINDOWS = (1, 4, 16)
FIDELITY_NAME = "fidelity.json"
SYNTHETIC_SOURCE = "synthetic music (same_edge_export.music, 12 s)"


def convert_graph(model: SameAutoencoder, side: str, windows: Sequence[int], timer: PhaseTimer | None = None) -> bytes:
    """fp32 ``.tflite`` flatbuffer of one side, one signature per window plus the flush; litert-torch's
    phases (trace, decompositions, lowering, MLIR passes, serialisation) are timed into ``timer``."""
    timer = timer or PhaseTimer()
    with timer.phase("import litert-torch", side=side), stderr_silenced():  # it logs torchao notices on fd 2
        import litert_torch

    # What no litert-torch phase covers (its entry and our signature setup) is counted here.
    with timer.phase("conversion, other", side=side), litert_phases(timer):
        # Weight-derived tensors computed once here, not folded by the converter in every signature.
        window, flush = graph_modules(folded_copy(model))[side]
        converter = None
        for name in signature_names(model, side, windows):
            module = flush if name.endswith("flush") else window
            kwargs = signature_inputs(model, name)
            converter = (litert_torch if converter is None else converter).signature(name, module,
                                                                                     sample_kwargs=kwargs)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), stderr_silenced():
            warnings.simplefilter("ignore")
            path = Path(tmp) / "graph.tflite"
            converter.convert().export(str(path))
            return path.read_bytes()


def embed_metadata(model: bytes, key: str, payload: bytes) -> bytes:
    """Add (or replace) a named metadata buffer in a ``.tflite`` flatbuffer.

    A large model (full-size SAME-L) keeps its weights past the flatbuffer, each buffer naming its
    ``offset`` from the start of the file: the re-packed flatbuffer is followed by those bytes
    unchanged, every offset moved by the same amount."""
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
    outside = [b for b in m.buffers if b.offset > 1]  # offset 1 with size 0 marks an empty buffer
    tail_at = min((b.offset for b in outside), default=len(model))
    was = [b.offset for b in outside]

    def pack(tail_offset: int) -> bytes:
        for b, offset in zip(outside, was, strict=True):
            b.offset = offset - tail_at + tail_offset
        builder = flatbuffers.Builder(1024 + len(payload) + (tail_at if not outside else 0))
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    if not outside:
        return pack(0)
    # The offsets' values do not change the flatbuffer's size (fixed-width fields, all non-zero),
    # so one trial packing gives where the tail lands; 16-byte aligned as the converter writes it.
    head = len(pack(1 << 40))
    tail_offset = -(-head // 16) * 16
    packed = pack(tail_offset)
    if len(packed) != head:
        raise RuntimeError("re-packing a .tflite with external buffers changed its size")
    return b"".join((packed, bytes(tail_offset - head), memoryview(model)[tail_at:]))


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("same-edge", "torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class TorchReference:
    """What every precision of one export is described by and compared with, computed on first use
    and then shared by the precisions: each signature's input and output shapes (from a PyTorch run
    of it), the input files' sha256, and the PyTorch fp32 whole-sequence model's latents
    ``[latent_dim, L]`` and audio ``[C, L * hop]`` on the fidelity signal ``[C, T]`` float32."""

    def __init__(self, model: SameAutoencoder, windows: Sequence[int], config_path: str | Path,
                 checkpoint_path: str | Path, fidelity_audio: np.ndarray | None = None,
                 fidelity_source: str = SYNTHETIC_SOURCE) -> None:
        self.model, self.windows = model, tuple(sorted(windows))
        self.config_path, self.checkpoint_path = Path(config_path), Path(checkpoint_path)
        self.fidelity_audio = synth_music() if fidelity_audio is None else fidelity_audio
        self.fidelity_source = fidelity_source

    @cached_property
    def signatures(self) -> dict[str, dict[str, SignatureSpec]]:
        """Per side, each signature's named input and output shapes."""
        out: dict[str, dict[str, SignatureSpec]] = {}
        modules = graph_modules(self.model)
        with torch.no_grad():
            for side, (window, flush) in modules.items():
                out[side] = {}
                for name in signature_names(self.model, side, self.windows):
                    inputs = signature_inputs(self.model, name)
                    outputs = (flush if name.endswith("flush") else window)(**inputs)
                    out[side][name] = SignatureSpec({k: tuple(v.shape) for k, v in inputs.items()},
                                                    {k: tuple(v.shape) for k, v in outputs.items()})
        return out

    @cached_property
    def source(self) -> Source:
        return Source(self.config_path.name, sha256_file(self.config_path), self.checkpoint_path.name,
                      sha256_file(self.checkpoint_path))

    @cached_property
    def fidelity(self) -> tuple[np.ndarray, np.ndarray]:
        """The reference latents and audio of ``fidelity_audio``, cut to the audio's length."""
        audio, hop = self.fidelity_audio, self.model.config.hop
        with torch.no_grad():
            latents = self.model.encode(torch.from_numpy(audio)[None])[0].numpy()[:, : -(-audio.shape[1] // hop)]
            decoded = self.model.decode(torch.from_numpy(latents)[None])[0].numpy()[:, : latents.shape[1] * hop]
        return latents, decoded


def build_manifest(reference: TorchReference, precision: str) -> Manifest:
    """The model's description, before its graph files exist (their sizes and hashes are filled in
    by ``write_model_dir``)."""
    model = reference.model
    cfg, g = model.config, geometry(model)
    context = g["decoder_context_shape"]  # None for SAME-L: its k = 1 output conv looks back at nothing
    graphs = {
        "encoder": GraphSpec("encoder", GRAPH_FILES["encoder"], 0, "", tuple(g["encoder_state_shape"]),
                             g["encoder_start_skip_frames"], g["encoder_flush_frames"],
                             reference.signatures["encoder"]),
        "decoder": GraphSpec("decoder", GRAPH_FILES["decoder"], 0, "", tuple(g["decoder_state_shape"]),
                             g["decoder_start_skip_samples"], g["decoder_flush_samples"],
                             reference.signatures["decoder"], None if context is None else tuple(context)),
    }
    return Manifest(
        ModelSpec(cfg.sample_rate, cfg.channels, cfg.latent_dim, cfg.hop, g["frames_per_chunk"], g["chunk_samples"],
                  cfg.to_dict(), g.get("attention", "chunked"), g.get("window_frames")),
        precision, reference.windows, graphs["encoder"], graphs["decoder"], reference.source, _versions(),
    )


def measure_fidelity(reference: TorchReference, model_dir: Path) -> dict[str, Any]:
    """SNR (dB) and max abs error of each exported graph against the PyTorch fp32 model, on the
    reference's fidelity signal."""
    from same_edge import Codec

    ref_latents, ref_audio = reference.fidelity
    audio = reference.fidelity_audio
    # One graph at a time: full-size SAME-L's fp32 graphs take about 3.7 GB each once loaded.
    with Codec.load(model_dir, sides=("encoder",)) as codec:
        latents = codec.encode(audio)
        rate = codec.sample_rate
    with Codec.load(model_dir, sides=("decoder",)) as codec:
        decoded = codec.decode(ref_latents)
    return {
        "signal": reference.fidelity_source,
        "seconds": audio.shape[1] / rate,
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
        raise ConfigError("window sizes must include 1 (the streaming window and every stream's tail)")
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
    timer: PhaseTimer | None = None,
    reference: TorchReference | None = None,
) -> Manifest:
    """Quantise fp32 graphs to ``precision``, check their ops, embed the manifest, and write
    ``out_dir`` (graphs, ``manifest.json``, ``fidelity.json``) all at once or not at all. A failed
    check raises ``GraphCheckError`` (``export.errors``). Each phase is timed into ``timer``.
    ``reference``: the PyTorch side shared by several precisions of one export (else made here)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    out_dir = Path(out_dir)
    timer = timer or PhaseTimer()
    reference = reference or TorchReference(model, windows, config_path, checkpoint_path, fidelity_audio,
                                            fidelity_source)
    step = f"{precision}: "
    with timer.phase(step + "manifest"):
        manifest = build_manifest(reference, precision)
    embedded = json.dumps(manifest.to_dict(with_files=False)).encode()
    graphs, specs = {}, {}
    for side, data in float_graphs.items():
        with timer.phase(step + "quantise", side=side):
            # Embed before quantising: the quantiser keeps metadata, and may store large models'
            # weights past the flatbuffer, which a re-pack would not carry over.
            data = quantize(embed_metadata(data, METADATA_KEY, embedded), precision)
        with timer.phase(step + "op check", side=side):
            report = inspect_ops(data)
            check_ops(report, precision, GRAPH_FILES[side])
        graphs[side] = data
        specs[side] = replace(manifest.graph(side), bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), ops=report)
    manifest = replace(manifest, encoder=specs["encoder"], decoder=specs["decoder"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name[:200]}.", dir=out_dir.parent))
    try:
        with timer.phase(step + "write"):
            for side, data in graphs.items():
                (staging / GRAPH_FILES[side]).write_bytes(data)
        graphs.clear()  # on disk now: a full-size SAME-L's are 3.4 GB in fp32
        delegation = {}
        for side in specs:
            # Every op of every signature runs in XNNPACK, or no model directory (export.delegation).
            with timer.phase(step + "delegation check", side=side):
                delegation[side] = check_delegation(staging / GRAPH_FILES[side])
        manifest = replace(manifest, **{side: replace(manifest.graph(side), delegation=report)
                                        for side, report in delegation.items()})
        (staging / MANIFEST_NAME).write_text(manifest.to_json())
        with timer.phase(step + "fidelity"):
            fidelity = measure_fidelity(reference, staging)
        fidelity["precision"] = precision
        with timer.phase(step + "write"):
            (staging / FIDELITY_NAME).write_text(json.dumps(fidelity, indent=2) + "\n")
            out_dir.mkdir(exist_ok=True)
            # Graphs first, manifest last: a reader never pairs a new manifest with old graphs.
            for name in (*GRAPH_FILES.values(), FIDELITY_NAME, MANIFEST_NAME):
                os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def model_dirs(out_dir: str | Path, precisions: Sequence[str]) -> dict[str, Path]:
    """Where each precision goes: ``out_dir`` itself for one, ``out_dir/<precision>`` for several."""
    out_dir = Path(out_dir)
    return {p: out_dir if len(precisions) == 1 else out_dir / p for p in precisions}


def export_precisions(
    config_path: str | Path,
    checkpoint_path: str | Path,
    out_dir: str | Path,
    precisions: Sequence[str] = ("fp32",),
    windows: Sequence[int] = DEFAULT_WINDOWS,
    fidelity_audio: np.ndarray | None = None,
    fidelity_audio_path: str | Path | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    timer: PhaseTimer | None = None,
) -> dict[str, Manifest]:
    """Convert a SAME checkpoint to fp32 graphs once, then quantise, check and write each precision
    from them into ``model_dirs(out_dir, precisions)``; returns each precision's manifest.

    Each directory is written whole or not at all; the first that fails a check stops the export
    (directories already written stay). With ``cache_dir``, the fp32 conversion is looked up in and
    stored to a ``ConversionCache`` there. Fidelity is measured on ``fidelity_audio`` ([C, T]
    float32 at the model's rate), else on the file ``fidelity_audio_path``, else on built-in
    synthetic music. Phases are timed into ``timer`` (and named in the progress bar)."""
    precisions = list(dict.fromkeys(precisions))
    if not precisions or set(precisions) - set(PRECISIONS):
        raise ValueError(f"unknown precision in {precisions!r}; choose from {', '.join(PRECISIONS)}")
    windows = _check_windows(windows)
    dirs = model_dirs(out_dir, precisions)
    timer = timer or PhaseTimer()
    logging.getLogger("absl").setLevel(logging.ERROR)
    steps = 3 + len(precisions)  # load, convert encoder, convert decoder, one per precision
    with tqdm(total=steps, disable=not progress, unit="step",
              bar_format="{desc}: {n}/{total} steps [{elapsed}]") as bar, timer.reporting_to(bar.set_description):
        cache = None if cache_dir is None else ConversionCache(cache_dir, say=lambda line: bar.write(
            f"same-edge: {line}", file=sys.stderr))
        with timer.phase("load checkpoint"):
            model = load_model(config_path, checkpoint_path)
            geometry(model)  # refuses a model without window graphs before anything is converted
            source = SYNTHETIC_SOURCE
            if fidelity_audio is None and fidelity_audio_path is not None:
                fidelity_audio = read_audio(fidelity_audio_path, model.config.sample_rate, model.config.channels,
                                            downmix=True)[0]
                source = str(fidelity_audio_path)
            elif fidelity_audio is not None:
                source = "audio given by the caller"
        bar.update(1)
        graphs = None
        if cache is not None:
            with timer.phase("conversion cache lookup"):
                key = conversion_key(config_path, checkpoint_path, windows)
                graphs = cache.load(key)
        if graphs is None:
            graphs = {}
            for side in SIDES:
                graphs[side] = convert_graph(model, side, windows, timer=timer)
                bar.update(1)
            if cache is not None:
                with timer.phase("conversion cache store"):
                    cache.store(key, graphs)
        else:
            if progress:
                bar.write(f"same-edge: fp32 graphs from the conversion cache ({Path(cache_dir) / key})",
                          file=sys.stderr)
            bar.update(2)
        manifests = {}
        reference = TorchReference(model, windows, config_path, checkpoint_path, fidelity_audio, source)
        for precision in precisions:
            manifests[precision] = write_model_dir(model, graphs, dirs[precision], precision, windows,
                                                   Path(config_path), Path(checkpoint_path), timer=timer,
                                                   reference=reference)
            bar.update(1)
    return manifests


def export(
    config_path: str | Path,
    checkpoint_path: str | Path,
    out_dir: str | Path,
    precision: str = "fp32",
    windows: Sequence[int] = DEFAULT_WINDOWS,
    fidelity_audio: np.ndarray | None = None,
    fidelity_audio_path: str | Path | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    timer: PhaseTimer | None = None,
) -> Manifest:
    """Export a SAME checkpoint at one precision to the model directory ``out_dir``; returns its
    manifest. Writes all files or none (see ``export_precisions``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return export_precisions(config_path, checkpoint_path, out_dir, [precision], windows, fidelity_audio,
                             fidelity_audio_path, progress, cache_dir, timer)[precision]
