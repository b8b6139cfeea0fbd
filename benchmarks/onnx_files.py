"""The ONNX and OpenVINO files the peers and kernels stages run: a PyTorch module's ONNX export,
ONNX Runtime's dynamic int8 of it and OpenVINO IR (fp32 or NNCF int8 weights), each written once
(to a temporary name, then renamed) and reused while it exists. Needs the ``peers`` extra."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from same_edge.graph import stderr_silenced

PACKAGES = ("onnx", "onnxruntime", "openvino", "nncf")  # the `peers` extra, as imported
INSTALL = "pip install 'same-edge[peers]'"


def unavailable() -> str | None:
    """One line naming the first missing package of the ``peers`` extra, or None when all import."""
    for name in PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            return f"peers skipped: {name} is not installed ({INSTALL})"
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars, tables or advice from the exporter and quantisers (stdout, stderr, logging)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), stderr_silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _cached(path: Path, write: Callable[[Path], None]) -> Path:
    """``path``, written by ``write(tmp)`` then renamed unless it exists (an OpenVINO ``.xml`` takes
    its ``.bin`` along)."""
    if not path.is_file():
        tmp = path.with_name(f"tmp-{path.name}")
        with _quiet():
            write(tmp)
        if tmp.with_suffix(".bin").is_file():
            os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
    return path


def export_module_onnx(module: torch.nn.Module, inputs: dict[str, np.ndarray], path: Path,
                       output_names: list[str] | None = None) -> Path:
    """fp32 ONNX of ``module`` called with ``inputs`` as keywords, static shapes, by torch's
    TorchScript exporter (``dynamo=False``), whose graph ONNX Runtime's quantisation pre-processing
    and OpenVINO's ONNX frontend both read."""
    def write(tmp: Path) -> None:
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        torch.onnx.export(module, (), str(tmp), kwargs=tensors, input_names=list(tensors), output_names=output_names,
                          dynamo=False, opset_version=17)
    return _cached(path, write)


def linear_layers(path: Path) -> list[str]:
    """MatMul and Gemm nodes with a constant right-hand side (the linear layers), in graph order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in constants]


def ort_preprocessed(fp32: Path, path: Path) -> Path:
    """``fp32`` after ONNX Runtime's quantisation pre-processing (shape inference and graph
    optimisation), which its docs ask for before ``quantize_dynamic``: without it the quantiser
    cannot see the shapes of most linear layers and leaves two thirds of them fp32."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    def write(tmp: Path) -> None:
        quant_pre_process(str(fp32), str(tmp), skip_symbolic_shape=True)
    return _cached(path, write)


def ort_int8(fp32: Path, path: Path, reduce_range: bool = False, skip_ends: bool = False) -> Path:
    """ONNX Runtime dynamic int8 of the pre-processed ``fp32``: the linear layers' MatMuls and Gemms
    only (as same-edge quantises only its FC layers), QInt8 weights per output channel;
    ``reduce_range``: 7-bit weights (no int16 overflow in AVX2's u8 x s8 multiply-adds);
    ``skip_ends``: the first and last linear layers stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def write(tmp: Path) -> None:
        linears = linear_layers(fp32)
        quantize_dynamic(str(fp32), str(tmp), op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
                         reduce_range=reduce_range, weight_type=QuantType.QInt8,
                         nodes_to_exclude=[linears[0], linears[-1]] if skip_ends else [],
                         extra_options={"MatMulConstBOnly": True})
    return _cached(path, write)


def openvino_ir(fp32: Path, path: Path, mode: str | None = None) -> Path:
    """OpenVINO IR of the ONNX ``fp32``, fp32 weights (not the fp16 ``save_model`` writes by default),
    or with ``mode`` (``int8_asym``, ``int8_sym``) its weights compressed by NNCF, per output channel."""
    os.environ.setdefault("NNCF_CI", "1")  # before nncf's import: no usage telemetry sent from a benchmark
    import nncf
    import openvino as ov

    def write(tmp: Path) -> None:
        model = ov.Core().read_model(str(fp32))  # the ONNX frontend (ov.convert_model would send telemetry)
        if mode is not None:
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode(mode))
        ov.save_model(model, str(tmp), compress_to_fp16=False)
    return _cached(path, write)
