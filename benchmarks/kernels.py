"""What each precision's matrix-multiply kernels can do on this CPU: one SAME-S block's four
FULLY_CONNECTED layers (the ~97% of its FLOPs that are matmuls) as a LiteRT graph per precision,
timed against the PyTorch fp32 matmuls of the same shapes, in one run.

    python benchmarks/kernels.py [--tokens 544] [--threads 1 2] [--repeats 7]

This is the ceiling the whole model can reach per precision: a precision whose FC kernels are
only k x faster than fp32 here cannot make the model more than about k x faster.

Beside the project's precisions, the kernels LiteRT could choose and another runtime's: LiteRT
with static int8 activations (calibrated; XNNPACK's qs8 kernels instead of its dynamic qd8 ones),
and ONNX Runtime fp32 and dynamic int8 (MLAS; with ``reduce_range``, 7-bit weights, too) when the
``peers`` extra is installed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from onnx_files import export_module_onnx, ort_int8, ort_preprocessed, unavailable
from timing import median_time
from torch import nn

from same_edge.graph import Graph, stderr_silenced
from same_edge_export.quantize import PRECISIONS, quantize

WIDTH, FF_MULT = 768, 3  # SAME-S
LAYERS = ("qkv", "out", "up", "down")


class BlockMatmuls(nn.Module):
    """The FC layers of one SAME-S transformer block, in sequence (qkv, out, ff up, ff down)."""

    def __init__(self, width: int = WIDTH, mult: int = FF_MULT) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 5 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        self.up = nn.Linear(width, 2 * mult * width)
        self.down = nn.Linear(mult * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.qkv(x)[..., : x.shape[-1]]
        h = self.out(q)
        a, g = self.up(h).chunk(2, dim=-1)
        return self.down(a * g)

    def flops(self, tokens: int) -> float:
        return 2.0 * tokens * sum(m.in_features * m.out_features for m in (self.qkv, self.out, self.up, self.down))


class _Layer(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def convert(module: BlockMatmuls, tokens: int) -> bytes:
    """One graph: signature ``block`` (all four layers) and one signature per layer, weights shared."""
    with stderr_silenced():
        import litert_torch

    converter = litert_torch.signature("block", module, sample_kwargs={"x": torch.zeros(1, tokens, WIDTH)})
    for name in LAYERS:
        linear = getattr(module, name)
        sample = {"x": torch.zeros(1, tokens, linear.in_features)}
        converter = converter.signature(name, _Layer(linear).eval(), sample_kwargs=sample)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), stderr_silenced():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "block.tflite"
        converter.convert().export(str(path))
        return path.read_bytes()


def static_int8(float_model: bytes, module: BlockMatmuls, tokens: int) -> bytes:
    """``float_model`` with static int8 activations and int8 per-channel weights, calibrated on
    random inputs of every signature (what the kernels run on, not a precision the exporter offers)."""
    from ai_edge_quantizer import qtyping, quantizer

    q = quantizer.Quantizer(bytearray(float_model))
    q.add_static_config(".*", qtyping.TFLOperationName.FULLY_CONNECTED, activation_num_bits=8, weight_num_bits=8)
    rng = np.random.default_rng(1)
    widths = {"block": WIDTH, **{name: getattr(module, name).in_features for name in LAYERS}}
    samples = {name: [{"x": rng.normal(size=(1, tokens, width)).astype(np.float32)} for _ in range(4)]
               for name, width in widths.items()}
    with stderr_silenced():
        return bytes(q.quantize(q.calibrate(samples)).quantized_model)


def _onnx_sessions(layers: dict[str, nn.Module], inputs: dict[str, np.ndarray], work: Path,
                   threads: int) -> dict[str, dict[str, object]]:
    """ONNX Runtime sessions per kernel ("ONNX Runtime fp32", "... int8", "... int8 reduce_range") and layer."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions: dict[str, dict[str, object]] = {}
    for name, layer in layers.items():
        module = layer if name == "block" else _Layer(layer).eval()
        fp32 = export_module_onnx(module, {"x": inputs[name]}, work / f"{name}-fp32.onnx")
        pre = ort_preprocessed(fp32, work / f"{name}-pre.onnx")
        paths = {"ONNX Runtime fp32": fp32, "ONNX Runtime int8 (MLAS)": ort_int8(pre, work / f"{name}-int8.onnx"),
                 "ONNX Runtime int8 reduce_range (MLAS)": ort_int8(pre, work / f"{name}-int8-7bit.onnx", reduce_range=True)}
        for kernel, path in paths.items():
            sessions.setdefault(kernel, {})[name] = ort.InferenceSession(str(path), options,
                                                                         providers=["CPUExecutionProvider"])
    return sessions


def kernel_rows(threads_list: list[int], repeats: int, work: Path, tokens: int = 544) -> list[dict]:
    """Time the block's FC layers, together and one by one, per precision (LiteRT) and in
    PyTorch fp32, per thread count."""
    torch.manual_seed(0)
    module = BlockMatmuls().eval()
    layers = {"block": module, **{name: getattr(module, name) for name in LAYERS}}
    shapes = {name: (m.in_features, m.out_features) for name, m in layers.items() if name != "block"}
    flops = {"block": module.flops(tokens), **{n: 2.0 * tokens * i * o for n, (i, o) in shapes.items()}}
    work.mkdir(parents=True, exist_ok=True)
    fp32 = work / "fp32.tflite"
    if not fp32.exists():
        fp32.write_bytes(convert(module, tokens))
    rng = np.random.default_rng(0)
    inputs = {name: rng.normal(size=(1, tokens, WIDTH if name == "block" else shapes[name][0])).astype(np.float32)
              for name in layers}
    static = work / "a8w8-static.tflite"
    if not static.exists():
        static.write_bytes(static_int8(fp32.read_bytes(), module, tokens))
    onnx_missing = unavailable()
    if onnx_missing:
        print(onnx_missing)
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        for name, layer in layers.items():
            x = torch.from_numpy(inputs[name])
            with torch.no_grad():
                t, spread = median_time(lambda layer=layer, x=x: layer(x), repeats)
            rows.append({"kernel": "PyTorch fp32", "layer": name, "threads": threads, "ms": t * 1e3, "spread_ms": spread * 1e3})
        for precision in (*PRECISIONS, "a8w8 static"):
            path = static if precision == "a8w8 static" else work / f"{precision}.tflite"
            if not path.exists():
                path.write_bytes(quantize(fp32.read_bytes(), precision))
            graph = Graph(path, threads)
            for name in layers:
                runner, x = graph[name], inputs[name]
                t, spread = median_time(lambda runner=runner, x=x: runner(x=x), repeats)
                rows.append({"kernel": f"LiteRT {precision}", "layer": name, "threads": threads, "ms": t * 1e3,
                             "spread_ms": spread * 1e3})
        for kernel, sessions in ({} if onnx_missing else _onnx_sessions(layers, inputs, work, threads)).items():
            for name, session in sessions.items():
                x = inputs[name]
                t, spread = median_time(lambda session=session, x=x: session.run(None, {"x": x}), repeats)
                rows.append({"kernel": kernel, "layer": name, "threads": threads, "ms": t * 1e3, "spread_ms": spread * 1e3})
    for r in rows:
        base = next(b for b in rows if b["kernel"] == "PyTorch fp32" and (b["threads"], b["layer"]) == (r["threads"], r["layer"]))
        r["tokens"], r["gflops"], r["vs_torch_fp32"] = tokens, flops[r["layer"]] / (r["ms"] / 1e3) / 1e9, base["ms"] / r["ms"]
        if r["layer"] != "block":
            r["shape"] = f"{tokens}x{shapes[r['layer']][0]} @ {shapes[r['layer']][0]}x{shapes[r['layer']][1]}"
    return rows


def kernel_table(rows: list[dict]) -> str:
    """Whole block per kernel and thread count, then GFLOP/s per layer (2 threads)."""
    lines = ["| kernel | threads | block ms | block GFLOP/s (fp32-equivalent) | vs PyTorch fp32 |", "|---|---|---|---|---|"]
    for r in (r for r in rows if r["layer"] == "block"):
        lines.append(f"| {r['kernel']} | {r['threads']} | {r['ms']:.1f} (±{r['spread_ms'] / 2:.1f}) | {r['gflops']:.0f} | "
                     f"{r['vs_torch_fp32']:.2f} |")
    threads = max(r["threads"] for r in rows)
    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    lines += ["", f"GFLOP/s per layer, {threads} threads:", "",
              "| layer | " + " | ".join(kernels) + " |", "|---|" + "---|" * len(kernels)]
    for layer in LAYERS:
        cells = [next(r for r in rows if r["layer"] == layer and r["kernel"] == k and r["threads"] == threads) for k in kernels]
        lines.append(f"| {layer} ({cells[0]['shape']}) | " + " | ".join(f"{c['gflops']:.0f}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=544, help="tokens per call (544 = one 16-chunk SAME-S window)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--work", type=Path, default=Path("build/bench/kernels"))
    args = p.parse_args()
    rows = kernel_rows(args.threads, args.repeats, args.work / str(args.tokens), args.tokens)
    print(f"one SAME-S block's FC layers, {args.tokens} tokens; median of {args.repeats}\n")
    print(kernel_table(rows))
    (args.work / f"kernels-{args.tokens}.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
