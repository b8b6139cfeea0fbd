"""Precisions: ai-edge-quantizer recipes, and a check that a recipe really did what it says.

A recipe can silently leave a graph in float (an op it does not match stays fp32), so every
quantised graph is inspected: each FULLY_CONNECTED weight must carry the precision's dtype.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from same_edge.graph import stderr_silenced
from same_edge.manifest import PRECISIONS

from .errors import GraphCheckError

# The dtype every FULLY_CONNECTED weight must have, by precision (TensorType names).
_WEIGHT_TYPE = {"fp32": "FLOAT32", "w16a32": "FLOAT16", "w8a32": "INT8", "w8a8": "INT8", "w4a8": "INT4"}


INT4_BLOCK = 32


def recipe(precision: str, int8_layers: Sequence[str] = ()) -> list[dict[str, Any]] | None:
    """The ai-edge-quantizer recipe for ``precision``; None for fp32.

    ``int8_layers``: FULLY_CONNECTED output names that ``w4a8`` keeps in int8 channelwise because
    their input width is not a multiple of the int4 block (only in small models; SAME-S has none).
    """
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    rm = recipe_manager.RecipeManager()
    ops = qtyping.TFLOperationName.FULLY_CONNECTED
    if precision == "w16a32":
        rm.add_weight_only_config(".*", ops, num_bits=16, algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    elif precision == "w8a32":
        rm.add_weight_only_config(".*", ops, num_bits=8)
    elif precision == "w8a8":
        rm.add_dynamic_config(".*", ops, num_bits=8)
    elif precision == "w4a8":
        rm.add_dynamic_config(".*", ops, num_bits=4, granularity=qtyping.QuantGranularity.BLOCKWISE_32)
        for name in int8_layers:  # the latest matching scope wins
            rm.add_dynamic_config(f"^{re.escape(name)};$", ops, num_bits=8)  # scope: output names + ";"
    return rm.get_quantization_recipe()


def quantize(float_model: bytes, precision: str) -> bytes:
    """Quantise a float ``.tflite`` flatbuffer to ``precision``."""
    int8_layers = [name for name, shape in _fully_connected(float_model) if shape[-1] % INT4_BLOCK]
    rp = recipe(precision, int8_layers if precision == "w4a8" else ())
    if rp is None:
        return float_model
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(bytearray(float_model), rp)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # shared weights are quantised once per signature, each time with a warning
    try:
        with stderr_silenced():  # the quantiser draws progress bars of its own
            return bytes(q.quantize(enable_progress_bar=False, enable_progress_report=False).quantized_model)
    finally:
        root.setLevel(level)


def inspect_ops(model: bytes) -> dict[str, Any]:
    """Op histogram over all subgraphs, custom/Flex ops, and FULLY_CONNECTED weight dtypes."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAsModel(model, 0)
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    tensor_type = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        codes.append(("CUSTOM:" + custom.decode()) if custom else builtin.get(code, str(code)))
    ops: Counter[str] = Counter()
    fc_weights: Counter[str] = Counter()
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            name = codes[op.OpcodeIndex()]
            ops[name] += 1
            if name == "FULLY_CONNECTED":
                w = sg.Tensors(op.Inputs(1))
                dtype = tensor_type[w.Type()]
                if dtype == "FLOAT32":  # weight-only recipes feed a DEQUANTIZE: look through it
                    producer = _producer(sg, op.Inputs(1))
                    if producer is not None and codes[producer.OpcodeIndex()] == "DEQUANTIZE":
                        dtype = tensor_type[sg.Tensors(producer.Inputs(0)).Type()]
                fc_weights[dtype] += 1
    custom = sorted(k for k in ops if k.startswith("CUSTOM:"))
    return {"ops": dict(sorted(ops.items())), "custom_ops": custom, "fully_connected_weights": dict(fc_weights)}


def _fully_connected(model: bytes) -> list[tuple[str, tuple[int, ...]]]:
    """(output tensor name, weight shape) of every FULLY_CONNECTED op."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAsModel(model, 0)
    fc = {i for i in range(m.OperatorCodesLength())
          if max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
          == schema.BuiltinOperator.FULLY_CONNECTED}
    out = []
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            if op.OpcodeIndex() in fc:
                w = sg.Tensors(op.Inputs(1))
                out.append((sg.Tensors(op.Outputs(0)).Name().decode(), tuple(w.ShapeAsNumpy().tolist())))
    return out


def _producer(subgraph: Any, tensor: int) -> Any:
    for o in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(o)
        if any(op.Outputs(j) == tensor for j in range(op.OutputsLength())):
            return op
    return None


def check_ops(report: dict[str, Any], precision: str, graph: str) -> None:
    """Raise ``GraphCheckError`` if the graph uses custom/Flex ops or a FULLY_CONNECTED weight escaped the precision
    (w4a8 may keep block-misaligned layers in int8, never in float)."""
    if report["custom_ops"]:
        raise GraphCheckError(f"{graph}: non-builtin ops {report['custom_ops']}")
    expected = _WEIGHT_TYPE[precision]
    allowed = {expected, "INT8"} if precision == "w4a8" else {expected}
    found = report["fully_connected_weights"]
    if set(found) - allowed or found.get(expected, 0) == 0:
        raise GraphCheckError(f"{graph}: {precision} expects every FULLY_CONNECTED weight in {expected}, found "
                           f"{report['fully_connected_weights']}")
