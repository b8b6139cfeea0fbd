"""ONNX Runtime, OpenVINO and PyTorch eager against same-edge's LiteRT graphs on the same SAME windows.

All on this machine, in one run.

    python benchmarks/peers.py --config models/same-s/model_config.json --models build/bench/same-s --out build/peers

What is measured: one 16-chunk window call per side, the exported graphs' ``encode_16`` and
``decode_16`` signatures (``same_edge_export.graphs``: ``EncoderWindow`` audio [C, 16 * chunk] + state
+ first -> latents; ``DecoderWindow`` latents + keep + state + context + first -> audio), in the middle
of a stream (state and context from a previous window, ``first`` 0). Every runtime runs that same
PyTorch module: PyTorch itself (eager fp32), its ONNX export (``torch.onnx.export``, static shapes;
ONNX Runtime fp32 and dynamic int8, OpenVINO fp32 and NNCF int8 weights), and the LiteRT graphs
same-edge exported from it. Per runtime and thread count: the median ms per call over interleaved
rounds (``speed.interleaved_times``), times real time (the audio one window holds), the time against
same-edge w8a8 of the same run, and the error of its main output (latents, audio) against PyTorch
fp32 on the same inputs: max |diff| / max |ref| and SNR dB.

Each int8 peer also runs at the most accurate of a few settings of its own (measured here, the best
of them timed), so that runtimes compare at equal fidelity as well as at equal bit width.

Needs the ``peers`` extra (``pip install 'same-edge[peers]'``); without it ``measure`` prints one
line and returns None. The ONNX and OpenVINO files are cached (run.py: in ``--work``/peers; here in
``--out``/work), keyed by the config, the weights and torch's version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from onnx_files import export_module_onnx, openvino_ir, ort_int8, ort_preprocessed, unavailable
from speed import interleaved_times, machine

from same_edge.graph import Graph, sha256_file
from same_edge.manifest import GRAPH_FILES, SIGNATURE_PREFIX
from same_edge.metrics import snr_db
from same_edge_export.checkpoint import load_model
from same_edge_export.graphs import geometry, graph_modules, signature_inputs
from same_edge_export.model import SameAutoencoder, folded_copy
from same_edge_export.music import synth_music

WINDOW = 16  # chunks per call: the largest window the graphs hold
SIDES = ("encode", "decode")
OUTPUT = {"encode": "latents", "decode": "audio"}  # the output compared against PyTorch fp32
EAGER = "PyTorch eager"
LITERT = "same-edge LiteRT"
ORT = "ONNX Runtime"
OPENVINO = "OpenVINO"
BASELINE = (LITERT, "w8a8")  # the ratios' reference row
# same-edge's schemes (same_edge_export.quantize: ai-edge-quantizer recipes on every FULLY_CONNECTED layer).
LITERT_SCHEMES = {
    "fp32": "fp32",
    "w8a32": "weight-only int8: symmetric per-channel int8 FC weights, fp32 activations",
    "w8a8": "int8 symmetric per-channel FC weights, activations quantised to int8 at run time "
            "(XNNPACK QD8: asymmetric, per row)",
}
ORT_INT8 = ("dynamic int8 (quant_pre_process, quantize_dynamic): QInt8 symmetric per-channel weights of every "
            "linear layer, activations "
            "quantised to uint8 at run time, asymmetric per tensor")
OV_INT8 = "weight-only int8 (nncf.compress_weights {mode}), per output channel"
OV_DEFAULTS = ("; CPU plugin defaults (DYNAMIC_QUANTIZATION_GROUP_SIZE 32: activations may be quantised at run time "
               "in groups of 32 where the CPU has int8 dot products)")


def max_rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| (as the reference-output tests measure)."""
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


@dataclass
class Windows:
    """One mid-stream window call per side: its PyTorch module (weights folded as exported), inputs,
    PyTorch fp32's main output, and the audio it holds."""

    modules: dict[str, torch.nn.Module]
    inputs: dict[str, dict[str, np.ndarray]]
    reference: dict[str, np.ndarray]
    seconds: float
    window: int  # chunks per call


def window_calls(model: SameAutoencoder, window: int = WINDOW) -> Windows:
    """The timed calls: two windows of synthesised music through the encoder window, the second
    one timed with the state the first left; the decoder likewise on those latents."""
    exported = graph_modules(folded_copy(model))  # the weight-derived tensors folded, as convert_graph exports
    modules = {side: exported[graph][0] for graph, side in SIGNATURE_PREFIX.items()}
    samples = window * geometry(model)["chunk_samples"]
    music = torch.from_numpy(synth_music(2.1 * samples / model.config.sample_rate)[:, : 2 * samples])
    inputs: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        enc = signature_inputs(model, f"encode_{window}")
        first = modules["encode"](**{**enc, "audio": music[:, :samples]})
        inputs["encode"] = {**enc, "audio": music[:, samples:], "state": first["state"], "first": torch.zeros(1)}
        dec = signature_inputs(model, f"decode_{window}")
        start = modules["decode"](**{**dec, "latents": first["latents"]})
        latents = modules["encode"](**inputs["encode"])["latents"]
        inputs["decode"] = {**dec, "latents": latents, "state": start["state"], "context": start["context"],
                            "first": torch.zeros(1)}
        reference = {side: modules[side](**inputs[side])[OUTPUT[side]].numpy() for side in SIDES}
    return Windows(modules, {side: {k: v.numpy().copy() for k, v in kw.items()} for side, kw in inputs.items()},
                   reference, samples / model.config.sample_rate, window)


# A runtime opened with some threads: side -> a call of that side's window returning its main output.
Calls = dict[str, Callable[[], np.ndarray]]


@dataclass
class Setting:
    """One runtime at one precision: how to open it, and what its quantisation is."""

    runtime: str
    precision: str
    scheme: str
    open: Callable[[int], Calls]
    alternative_of: str | None = None  # a more accurate setting tried for this precision's row


def eager(w: Windows) -> Callable[[int], Calls]:
    def open_(threads: int) -> Calls:
        def call(side: str) -> Callable[[], np.ndarray]:
            tensors = {k: torch.from_numpy(v) for k, v in w.inputs[side].items()}

            def run() -> np.ndarray:
                torch.set_num_threads(threads)  # a global: set on every call, as other runtimes run between
                with torch.no_grad():
                    return w.modules[side](**tensors)[OUTPUT[side]].numpy()
            return run
        return {side: call(side) for side in SIDES}
    return open_


def litert(w: Windows, model_dir: Path) -> Callable[[int], Calls]:
    def open_(threads: int) -> Calls:
        calls = {}
        for graph, side in SIGNATURE_PREFIX.items():
            g = Graph(model_dir / GRAPH_FILES[graph], threads)  # held by the call: closing it frees the signature
            calls[side] = lambda g=g, side=side: g[f"{side}_{w.window}"](**w.inputs[side])[OUTPUT[side]]
        return calls
    return open_


def onnxruntime_session(w: Windows, paths: dict[str, Path]) -> Callable[[int], Calls]:
    """ONNX Runtime's CPU provider, every graph optimisation, ``threads`` intra-op threads."""
    import onnxruntime as ort

    def open_(threads: int) -> Calls:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        calls = {}
        for side in SIDES:
            session = ort.InferenceSession(str(paths[side]), options, providers=["CPUExecutionProvider"])
            feed = {i.name: w.inputs[side][i.name] for i in session.get_inputs()}
            calls[side] = lambda s=session, f=feed, side=side: s.run([OUTPUT[side]], f)[0]
        return calls
    return open_


def openvino_request(w: Windows, paths: dict[str, Path], config: dict | None = None) -> Callable[[int], Calls]:
    """OpenVINO's CPU plugin, latency hint, fp32 inference precision (no bf16 on CPUs that have it),
    ``threads`` inference threads; ``config``: more CPU properties."""
    import openvino as ov

    def open_(threads: int) -> Calls:
        core, calls = ov.Core(), {}
        properties = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                      **(config or {})}
        for side in SIDES:
            compiled = core.compile_model(str(paths[side]), "CPU", properties)
            request, output = compiled.create_infer_request(), compiled.output(OUTPUT[side])
            feed = {i.get_any_name(): w.inputs[side][i.get_any_name()] for i in compiled.inputs}
            calls[side] = lambda r=request, f=feed, o=output: r.infer(f)[o].copy()
        return calls
    return open_


def export_onnx(w: Windows, side: str, path: Path) -> Path:
    """fp32 ONNX of one side's window module (``export_module_onnx``)."""
    tensors = {k: torch.from_numpy(v) for k, v in w.inputs[side].items()}
    with torch.no_grad():
        outputs = list(w.modules[side](**tensors))
    # Outputs named as inputs (state, context) get a prefix: ONNX names each value once.
    names = [f"next_{o}" if o in tensors else o for o in outputs]
    return export_module_onnx(w.modules[side], w.inputs[side], path, names)


def settings(w: Windows, litert_dirs: dict[str, Path], work: Path, key: str) -> list[Setting]:
    """Every runtime and precision measured: a row each, plus the more accurate int8 alternatives
    (``alternative_of``) that compete for one extra row per peer."""
    work.mkdir(parents=True, exist_ok=True)
    onnx = {side: export_onnx(w, side, work / f"{side}_{w.window}-{key}.onnx") for side in SIDES}

    def each(make: Callable[[Path, Path], Path], name: str) -> dict[str, Path]:
        return {side: make(onnx[side], work / f"{side}_{w.window}-{key}-{name}") for side in SIDES}

    ov_fp32 = each(openvino_ir, "ov-fp32.xml")
    ort_pre = each(ort_preprocessed, "ort-pre.onnx")

    def ort_each(make: Callable[[Path, Path], Path], name: str) -> dict[str, Path]:
        return {side: make(ort_pre[side], work / f"{side}_{w.window}-{key}-{name}") for side in SIDES}

    rows = [Setting(EAGER, "fp32", "fp32", eager(w))]
    rows += [Setting(LITERT, p, LITERT_SCHEMES[p], litert(w, d)) for p, d in litert_dirs.items()]
    rows += [Setting(ORT, "fp32", "fp32", onnxruntime_session(w, onnx)),
             Setting(ORT, "int8", ORT_INT8, onnxruntime_session(w, ort_each(ort_int8, "ort-pre-int8.onnx"))),
             Setting(ORT, "int8", f"{ORT_INT8}; 7-bit weights (reduce_range)",
                     onnxruntime_session(w, ort_each(lambda f, p: ort_int8(f, p, reduce_range=True), "ort-pre-int8-rr.onnx")),
                     alternative_of="int8"),
             Setting(ORT, "int8", f"{ORT_INT8}; first and last linear layers fp32",
                     onnxruntime_session(w, ort_each(lambda f, p: ort_int8(f, p, skip_ends=True), "ort-pre-int8-ends.onnx")),
                     alternative_of="int8"),
             Setting(OPENVINO, "fp32", "fp32", openvino_request(w, ov_fp32))]
    asym = each(lambda f, p: openvino_ir(f, p, "int8_asym"), "ov-int8-asym.xml")
    rows += [Setting(OPENVINO, "int8 weights", OV_INT8.format(mode="INT8_ASYM") + OV_DEFAULTS,
                     openvino_request(w, asym)),
             Setting(OPENVINO, "int8 weights", OV_INT8.format(mode="INT8_SYM") + OV_DEFAULTS,
                     openvino_request(w, each(lambda f, p: openvino_ir(f, p, "int8_sym"), "ov-int8-sym.xml")),
                     alternative_of="int8 weights"),
             Setting(OPENVINO, "int8 weights", OV_INT8.format(mode="INT8_ASYM")
                     + "; no dynamic activation quantisation (DYNAMIC_QUANTIZATION_GROUP_SIZE 0)",
                     openvino_request(w, asym, {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}), alternative_of="int8 weights")]
    return rows


def errors(calls: Calls, w: Windows) -> dict[str, float]:
    """Each side's main output against PyTorch fp32's: max |diff| / max |ref| and SNR dB."""
    out = {}
    for side in SIDES:
        got = calls[side]()
        out[f"{side}_max_rel_error"] = max_rel_error(got, w.reference[side])
        out[f"{side}_snr_db"] = snr_db(w.reference[side], got)
    return out


def _worst_snr(e: dict[str, float]) -> float:
    return min(e["encode_snr_db"], e["decode_snr_db"])


def choose(candidates: list[Setting], w: Windows, threads: int) -> tuple[list[tuple[Setting, dict]], list[dict]]:
    """The settings to time, each with its errors against PyTorch fp32 (one call each, ``threads``
    threads): every setting that is not an alternative, plus per precision with alternatives the most
    accurate (by the worse side's SNR) of its own setting and them, as an extra row, or as its own row
    renamed when that is the most accurate; and the alternatives' errors, timed or not."""
    measured = []
    for s in candidates:
        calls = s.open(threads)
        measured.append((s, errors(calls, w)))
        del calls
    chosen = [(s, e) for s, e in measured if s.alternative_of is None]
    for runtime, precision in dict.fromkeys((s.runtime, s.alternative_of) for s, _ in measured if s.alternative_of):
        i = next(i for i, (s, _) in enumerate(chosen) if (s.runtime, s.precision) == (runtime, precision))
        alternatives = [(s, e) for s, e in measured if (s.runtime, s.alternative_of) == (runtime, precision)]
        best, e = max([chosen[i], *alternatives], key=lambda se: _worst_snr(se[1]))
        if best is chosen[i][0]:
            chosen[i] = (replace(best, precision=f"{precision} (most accurate tried)"), e)
        else:
            chosen.append((replace(best, precision=f"{precision}, most accurate", alternative_of=None), e))
    tried = [{"runtime": s.runtime, "precision": s.alternative_of, "scheme": s.scheme, **e}
             for s, e in measured if s.alternative_of]
    return chosen, tried


def peer_rows(w: Windows, candidates: list[Setting], threads_list: list[int], repeats: int) -> dict:
    """Rows of every chosen setting per thread count: median (and spread) ms per window call,
    times real time, errors against PyTorch fp32, and time against same-edge w8a8 at those threads."""
    chosen, tried = choose(candidates, w, max(threads_list))
    rows = []
    for threads in threads_list:
        fns: dict[str, Callable[[], object]] = {}
        for i, (s, _) in enumerate(chosen):
            calls = s.open(threads)
            for side in SIDES:
                fns[f"{i}|{side}"] = calls[side]
        times = interleaved_times(fns, repeats)
        del fns
        for i, (s, e) in enumerate(chosen):
            row = {"runtime": s.runtime, "precision": s.precision, "scheme": s.scheme, "threads": threads, **e}
            for side in SIDES:
                median, spread = times[f"{i}|{side}"]
                row |= {f"{side}_ms": median * 1e3, f"{side}_spread_ms": spread * 1e3,
                        f"{side}_x_realtime": w.seconds / median}
            rows.append(row)
    for r in rows:
        base = next((b for b in rows if (b["runtime"], b["precision"]) == BASELINE and b["threads"] == r["threads"]), None)
        for side in SIDES:
            r[f"{side}_vs_w8a8"] = r[f"{side}_ms"] / base[f"{side}_ms"] if base else None
    return {"window_chunks": w.window, "window_seconds": w.seconds, "repeats": repeats, "rows": rows, "alternatives": tried,
            "versions": versions()}


def versions() -> dict[str, str]:
    from importlib import metadata

    return {p: metadata.version(p) for p in ("torch", "ai-edge-litert", "onnxruntime", "openvino", "nncf")}


def cache_key(config: Path, checkpoint: Path) -> str:
    """What the cached ONNX and OpenVINO files depend on: the config, the weights and torch."""
    h = hashlib.sha256(Path(config).read_bytes() + sha256_file(checkpoint).encode() + torch.__version__.encode())
    return h.hexdigest()[:12]


def measure(config: Path, checkpoint: Path, litert_dirs: dict[str, Path], work: Path, threads_list: list[int],
            repeats: int, window: int = WINDOW) -> dict | None:
    """The peers report (``peer_rows``) of the model ``config`` with the weights ``checkpoint``, against
    the LiteRT exports ``litert_dirs`` (precision -> model directory, of the same weights); None,
    after one line saying how to install them, without the peer packages."""
    message = unavailable()
    if message:
        print(message)
        return None
    model = load_model(config, checkpoint)
    w = window_calls(model, window)
    return peer_rows(w, settings(w, litert_dirs, work, cache_key(config, checkpoint)), threads_list, repeats)


def _ratio(r: dict, side: str) -> str:
    return "-" if r[f"{side}_vs_w8a8"] is None else f"{r[f'{side}_vs_w8a8']:.2f}"


def _error(r: dict, side: str) -> str:
    return f"{r[f'{side}_max_rel_error']:.1e} / {r[f'{side}_snr_db']:.1f}"


def peers_table(report: dict) -> str:
    """Markdown: a row per runtime, precision and thread count; errors as max |diff| / max |ref| and
    SNR dB against PyTorch fp32; "vs w8a8": time over same-edge w8a8's time (above 1: slower)."""
    lines = ["| runtime | precision | scheme | threads | encode ms | decode ms | encode x RT | decode x RT | "
             "encode error (max rel / SNR dB) | decode error (max rel / SNR dB) | encode time vs same-edge w8a8 | "
             "decode time vs same-edge w8a8 |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['runtime']} | {r['precision']} | {r['scheme']} | {r['threads']} | "
                     f"{r['encode_ms']:.1f} (±{r['encode_spread_ms'] / 2:.1f}) | {r['decode_ms']:.1f} "
                     f"(±{r['decode_spread_ms'] / 2:.1f}) | {r['encode_x_realtime']:.1f} | {r['decode_x_realtime']:.1f} | "
                     f"{_error(r, 'encode')} | {_error(r, 'decode')} | {_ratio(r, 'encode')} | {_ratio(r, 'decode')} |")
    if report.get("alternatives"):
        lines += ["", "int8 settings tried for the most accurate row (errors against PyTorch fp32):", "",
                  "| runtime | scheme | encode error (max rel / SNR dB) | decode error (max rel / SNR dB) |",
                  "|---|---|---|---|"]
        lines += [f"| {r['runtime']} | {r['scheme']} | {_error(r, 'encode')} | {_error(r, 'decode')} |"
                  for r in report["alternatives"]]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True,
                   help="exports of run.py or precision_fidelity.py: seeded.safetensors and a directory per precision")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    dirs = {pr: args.models / pr for pr in LITERT_SCHEMES if (args.models / pr / "manifest.json").is_file()}
    report = measure(args.config, args.models / "seeded.safetensors", dirs, args.out / "work", args.threads, args.repeats)
    if report is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "peers.json").write_text(json.dumps({"machine": machine(), **report}, indent=2) + "\n")
        print(f"{machine()}; {report['window_seconds']:.2f} s of audio per window call, medians of {args.repeats}\n")
        print(peers_table(report))


if __name__ == "__main__":
    main()
