"""Interpreter or CompiledModel? Load time and per-call time of one signature, measured in one run.

    python benchmarks/runtime_choice.py DIR [--signature encode_16] [--threads 2] [--repeats 7]

Runs the same signature with identical inputs through (a) the Interpreter with same_edge's
allocate-once signature path, (b) the Interpreter's public SignatureRunner (re-allocates per
call), (c) CompiledModel, (d) CompiledModel with an XNNPACK weight cache, and prints medians.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.cpu_options import CpuOptions
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.options import Options
from timing import median_time

from same_edge.graph import Graph
from same_edge.manifest import read_manifest


def _inputs(manifest: dict, side: str, signature: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = manifest[side]["signatures"][signature]["inputs"]
    out = {k: (0.1 * rng.normal(size=v)).astype(np.float32) for k, v in shapes.items()}
    if "first" in out:
        out["first"] = np.zeros(1, np.float32)
    if "keep" in out:
        out["keep"] = np.ones_like(out["keep"])
    return out


def _compiled(path: Path, threads: int, cache: str) -> CompiledModel:
    opts = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(
        num_threads=threads, xnnpack_weight_cache_path=cache))
    return CompiledModel.from_file(str(path), options=opts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--signature", default="encode_16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    manifest = read_manifest(args.model_dir).raw
    side = "encoder" if args.signature.startswith("encode") else "decoder"
    path = args.model_dir / manifest[side]["file"]
    x = _inputs(manifest, side, args.signature)
    results = {}

    t0 = time.perf_counter()
    graph = Graph(path, args.threads)
    results["interpreter (same_edge fast path)"] = {"load_s": time.perf_counter() - t0}
    sig = graph[args.signature]
    ref = sig(**x)
    results["interpreter (same_edge fast path)"]["call"] = median_time(lambda: sig(**x), args.repeats)

    interp = Interpreter(model_path=str(path), num_threads=args.threads)
    runner = interp.get_signature_runner(args.signature)
    results["interpreter (public SignatureRunner)"] = {"call": median_time(lambda: runner(**x), args.repeats)}

    with tempfile.TemporaryDirectory() as cache:
        for name, cache_path in (("CompiledModel", ""), ("CompiledModel + XNNPACK weight cache", cache + "/weights.xnn")):
            t0 = time.perf_counter()
            cm = _compiled(path, args.threads, cache_path)
            load = time.perf_counter() - t0
            idx = cm.get_signature_index(args.signature)
            inputs = cm.create_input_buffers(idx)
            outputs = cm.create_output_buffers(idx)
            names = cm.get_signature_by_index(idx)["inputs"]
            out_names = cm.get_signature_by_index(idx)["outputs"]

            def run(cm=cm, idx=idx, inputs=inputs, outputs=outputs, names=names):
                for buf, n in zip(inputs, names, strict=True):
                    buf.write(x[n])
                cm.run_by_index(idx, inputs, outputs)

            results[name] = {"load_s": load, "call": median_time(run, args.repeats)}
            first = out_names[0]
            got = outputs[out_names.index(first)].read(ref[first].size, np.float32).reshape(ref[first].shape)
            results[name]["max_abs_diff_vs_interpreter"] = float(np.abs(got - ref[first]).max())

    print(f"{path} {args.signature}, {args.threads} threads, median of {args.repeats}:")
    for name, r in results.items():
        med, spread = r["call"]
        extra = f", load {r['load_s']:.2f} s" if "load_s" in r else ""
        diff = f", max |diff| {r['max_abs_diff_vs_interpreter']:.1e}" if "max_abs_diff_vs_interpreter" in r else ""
        print(f"  {name:<40} {med * 1e3:8.1f} ms/call (spread {spread * 1e3:.1f}){extra}{diff}")
    print(json.dumps({k: {**v, "call": list(v["call"])} for k, v in results.items()}))


if __name__ == "__main__":
    main()
