"""Which LiteRT runtime path? Memory, load time and per-call time of one graph, measured in one run.

    python benchmarks/runtime_choice.py DIR [--side encoder] [--threads 2] [--repeats 5]

Each variant runs in a fresh process: load the graph, run every signature once (as a file-to-file
encode does: the largest window, the smaller ones for the tail, the flush), then time the largest
window. Variants: the Interpreter (allocating each signature once), CompiledModel without a weight
cache, with XNNPACK's in-memory weight cache (what ``same_edge.graph`` uses), and with a weight
cache file on disk. The exported graphs share one set of weights between their signatures; the
peak RSS shows whether the runtime packs them once or once per signature.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = ("interpreter", "compiled", "compiled+memory-cache", "compiled+file-cache")

_CHILD = r'''
import json, os, sys, time
import numpy as np
variant, path, threads, repeats, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def hwm():
    return next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM")) / 1024
import ai_edge_litert  # imports before the baseline
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.cpu_options import CpuOptions
from ai_edge_litert.options import Options
from same_edge.graph import IN_MEMORY_WEIGHT_CACHE, Graph, stderr_silenced
base = hwm()
t0 = time.perf_counter()
with stderr_silenced():
    if variant == "interpreter":
        interp = Interpreter(model_path=path, num_threads=threads)
        sigs = {}
        for key in interp.get_signature_list():
            r = interp.get_signature_runner(key)
            details = r.get_input_details()
            interp._interpreter.AllocateTensors(r._subgraph_index)
            def call(r=r, details=details):
                for d in details.values():
                    interp._interpreter.SetTensor(d["index"], np.zeros(d["shape"], np.float32), r._subgraph_index)
                interp._interpreter.Invoke(r._subgraph_index)
            sigs[key] = call
    elif variant == "compiled":
        cm = CompiledModel.from_file(path, options=Options(cpu_options=CpuOptions(num_threads=threads)))
        sigs = {}
        for key in cm.get_signature_list():
            i = cm.get_signature_index(key)
            ins, outs = cm.create_input_buffers(i), cm.create_output_buffers(i)
            shapes = [d["shape"] for d in cm.get_input_tensor_details(key).values()]
            for b, s in zip(ins, shapes):
                b.write(np.zeros(s, np.float32))
            sigs[key] = lambda i=i, ins=ins, outs=outs: cm.run_by_index(i, ins, outs)
    else:
        graph = Graph(path, threads, weight_cache=cache if variant == "compiled+file-cache" else IN_MEMORY_WEIGHT_CACHE)
        sigs = {k: (lambda s=s: s(**{n: np.zeros(sh, np.float32) for n, sh in s.inputs.items()}))
                for k, s in graph.signatures.items()}
load = time.perf_counter() - t0
for call in sigs.values():
    call()
largest = max((k for k in sigs if k.split("_")[1].isdigit()), key=lambda k: int(k.split("_")[1]))
times = []
for _ in range(repeats):
    t = time.perf_counter(); sigs[largest](); times.append(time.perf_counter() - t)
print(json.dumps({"load_s": load, "signature": largest, "call_ms": 1e3 * float(np.median(times)),
                  "call_spread_ms": 1e3 * float(max(times) - min(times)), "rss_growth_mb": hwm() - base}))
sys.stdout.flush()
os._exit(0)
'''


def measure(graph: Path, threads: int = 2, repeats: int = 5) -> dict[str, dict]:
    """Per variant: load seconds, median ms of the largest window, peak RSS growth over the imports (MB)."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, "-c", _CHILD, variant, str(graph), str(threads), str(repeats),
                                  f"{tmp}/{variant}.xnn"], capture_output=True, text=True, check=True)
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path)
    p.add_argument("--side", default="encoder", choices=["encoder", "decoder"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    graph = args.model_dir / f"{args.side}.tflite"
    results = measure(graph, args.threads, args.repeats)
    print(f"{graph} ({graph.stat().st_size / 1e6:.1f} MB), {args.threads} threads, median of {args.repeats}:")
    for name, r in results.items():
        print(f"  {name:<24} peak RSS +{r['rss_growth_mb']:6.0f} MB  load {r['load_s']:.2f} s  "
              f"{r['signature']} {r['call_ms']:7.1f} ms (spread {r['call_spread_ms']:.1f})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
