"""Deliberate small edits of an exported model directory, for tests that must notice them: one
weight moved, or one op swapped for another. Each edit patches the ``.tflite`` bytes in place
(nothing else in the file moves) and re-records the graph's sha256 in the manifest, so that the
runtime loads the edited graph as a valid model."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as tfl


def _model(buf: bytes) -> tfl.Model:
    return tfl.Model.GetRootAs(buf, 0)


def _opcodes(model: tfl.Model) -> list[int]:
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return [max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) for c in codes]


def _rehash(model_dir: Path, side: str, buf: bytes) -> None:
    (model_dir / f"{side}.tflite").write_bytes(buf)
    manifest_path = model_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest[side]["sha256"] = hashlib.sha256(buf).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2))


def move_weight(model_dir: Path, side: str, layer: int, delta: float) -> str:
    """Move element [0, 0] of the ``layer``-th FULLY_CONNECTED weight of the first signature by
    ``delta`` (an int8 weight by ``round(delta / scale)`` quantisation steps, at least one). The
    signatures share their weight buffers, so every signature sees the move. Returns what moved."""
    path = model_dir / f"{side}.tflite"
    buf = bytearray(path.read_bytes())
    model = _model(bytes(buf))
    graph, codes = model.Subgraphs(0), _opcodes(model)
    fcs = [graph.Operators(j) for j in range(graph.OperatorsLength())
           if codes[graph.Operators(j).OpcodeIndex()] == tfl.BuiltinOperator.FULLY_CONNECTED]
    weight = graph.Tensors(fcs[layer].Inputs(1))
    buffer = model.Buffers(weight.Buffer())
    # Quantised exports keep their weights after the flatbuffer (at an offset), fp32 ones inline.
    at = buffer.Offset() or buffer._tab.Vector(buffer._tab.Offset(4))  # Buffer.data, its first field
    if weight.Type() == tfl.TensorType.FLOAT32:
        old = np.frombuffer(buf, np.float32, 1, at)[0]
        struct.pack_into("<f", buf, at, old + delta)
        what = f"float32 {old:+.6f} -> {np.float32(old + delta):+.6f}"
    elif weight.Type() == tfl.TensorType.INT8:
        scale = float(weight.Quantization().Scale(0))
        old = int(np.frombuffer(buf, np.int8, 1, at)[0])
        steps = max(1, round(abs(delta) / scale)) * (1 if delta > 0 else -1)
        new = int(np.clip(old + steps, -127, 127))
        struct.pack_into("<b", buf, at, new)
        what = f"int8 {old} -> {new} at scale {scale:.3g}"
    else:
        raise ValueError(f"weight type {weight.Type()} is not float32 or int8")
    _rehash(model_dir, side, bytes(buf))
    return f"{weight.Name().decode()} [0, 0]: {what}"


def swap_last_op(model_dir: Path, side: str, op: str, replacement: str) -> int:
    """In every signature of ``side``, make the last ``op`` (a builtin operator name such as
    ``"TANH"``) a ``replacement`` with the same inputs and outputs. Returns how many signatures
    changed."""
    path = model_dir / f"{side}.tflite"
    buf = bytearray(path.read_bytes())
    model = _model(bytes(buf))
    codes = _opcodes(model)
    old_index = codes.index(getattr(tfl.BuiltinOperator, op))
    new_index = codes.index(getattr(tfl.BuiltinOperator, replacement))
    changed = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        matches = [graph.Operators(j) for j in range(graph.OperatorsLength())
                   if graph.Operators(j).OpcodeIndex() == old_index]
        if not matches:
            continue
        field = matches[-1]._tab.Offset(4)  # Operator.opcode_index, the table's first field
        assert field, "opcode_index 0 is stored by omission; pick an op with another index"
        struct.pack_into("<I", buf, matches[-1]._tab.Pos + field, new_index)
        changed += 1
    _rehash(model_dir, side, bytes(buf))
    return changed
