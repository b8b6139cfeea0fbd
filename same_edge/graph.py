"""A thin LiteRT wrapper: one ``.tflite`` file, its signatures, called without per-call re-allocation.

``SignatureRunner.__call__`` resizes every input and re-allocates the subgraph on each call. The
exported graphs have static shapes, so each signature is allocated once here and a call only
copies inputs in, invokes, and copies outputs out.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for a while: LiteRT's C++ side logs there ("Created TensorFlow
    Lite XNNPACK delegate", op counts). Errors still reach Python as exception messages."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class Signature:
    """One signature of a graph: ``sig(**inputs) -> {name: array}`` (float32 arrays, static shapes)."""

    def __init__(self, interpreter: Interpreter, key: str) -> None:
        runner = interpreter.get_signature_runner(key)
        self.key = key
        self._wrapper = interpreter._interpreter  # the C++ binding; the public runner re-allocates per call
        self._subgraph = runner._subgraph_index
        in_details = runner.get_input_details()
        out_details = runner.get_output_details()
        self.inputs = {n: (d["index"], tuple(int(s) for s in d["shape"])) for n, d in in_details.items()}
        self.outputs = {n: (d["index"], tuple(int(s) for s in d["shape"])) for n, d in out_details.items()}
        self._wrapper.AllocateTensors(self._subgraph)

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        for name, (index, shape) in self.inputs.items():
            value = inputs[name]
            if value.shape != shape or value.dtype != np.float32:
                raise ValueError(f"{self.key}.{name}: expected float32 {list(shape)}, got {value.dtype} {list(value.shape)}")
            self._wrapper.SetTensor(index, np.ascontiguousarray(value), self._subgraph)
        self._wrapper.Invoke(self._subgraph)
        return {name: self._wrapper.GetTensor(index, self._subgraph) for name, (index, _) in self.outputs.items()}


class Graph:
    """A ``.tflite`` graph with named signatures, run by the LiteRT interpreter (XNNPACK on CPU)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        try:
            with stderr_silenced():
                self._interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
                self.signatures = {key: Signature(self._interpreter, key) for key in self._interpreter.get_signature_list()}
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{self.path} could not be loaded by LiteRT ({str(e).strip()})") from None

    def __getitem__(self, key: str) -> Signature:
        try:
            return self.signatures[key]
        except KeyError:
            raise ValueError(f"{self.path.name} has no signature {key!r} (has {sorted(self.signatures)})") from None
