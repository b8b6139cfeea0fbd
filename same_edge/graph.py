"""A thin LiteRT wrapper: one ``.tflite`` file, its signatures, compiled once for the CPU.

The graph runs as a LiteRT ``CompiledModel`` on the XNNPACK CPU accelerator with XNNPACK's
in-memory weight cache. The exported graphs hold several signatures over one set of weights
(``encode_1``, ``encode_4``, ... share every matrix); without the cache XNNPACK packs each
signature's weights separately, which costs one packed copy of the model per signature (4x the
graph's size for fp32 SAME-S). With it, the weights are packed once per graph.

Each signature's input and output buffers are created once; a call only copies inputs in, runs,
and copies outputs out.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import ai_edge_litert
import numpy as np
from ai_edge_litert.compiled_model import CompiledModel
from ai_edge_litert.cpu_options import CpuOptions
from ai_edge_litert.environment import Environment
from ai_edge_litert.hardware_accelerator import HardwareAccelerator
from ai_edge_litert.options import Options

# XNNPACK's name for a weight cache kept in an anonymous memory file rather than on disk.
IN_MEMORY_WEIGHT_CACHE = ":memory"


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for a while: LiteRT's C++ side logs there at INFO level when it
    creates and destroys its environment and accelerators. Errors still reach Python as exception
    messages."""
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

    def __init__(self, model: CompiledModel, key: str) -> None:
        self.key = key
        self._model = model
        names = model.get_signature_list()[key]
        in_details, out_details = model.get_input_tensor_details(key), model.get_output_tensor_details(key)
        self.inputs = {n: tuple(int(s) for s in in_details[n]["shape"]) for n in names["inputs"]}
        self.outputs = {n: tuple(int(s) for s in out_details[n]["shape"]) for n in names["outputs"]}
        self._in = {n: model.create_input_buffer_by_name(key, n) for n in self.inputs}
        self._out = {n: model.create_output_buffer_by_name(key, n) for n in self.outputs}
        for name, shape in self.inputs.items():  # defined contents (and LiteRT's lazy set-up, done here)
            self._in[name].write(np.zeros(shape, np.float32))

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        for name, shape in self.inputs.items():
            value = inputs[name]
            if value.shape != shape or value.dtype != np.float32:
                raise ValueError(f"{self.key}.{name}: expected float32 {list(shape)}, got {value.dtype} {list(value.shape)}")
            self._in[name].write(value)
        self._model.run_by_name(self.key, self._in, self._out)
        return {name: self._out[name].read(int(np.prod(shape)), np.float32).reshape(shape)
                for name, shape in self.outputs.items()}

    def _release(self) -> None:
        for buffer in (*self._in.values(), *self._out.values()):
            buffer.destroy()


def _release(signatures: dict[str, Signature], model: CompiledModel, environment: Environment) -> None:
    with stderr_silenced():  # destroying the environment logs each accelerator
        for sig in signatures.values():
            sig._release()
        model.close()
        environment.close()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Graph:
    """A ``.tflite`` graph with named signatures, run by LiteRT on the CPU (XNNPACK) with ``threads``
    threads (None: every available core; LiteRT's own default would be one).

    ``weight_cache``: where XNNPACK keeps the weights it packs, so that the signatures share one
    packed copy: ``IN_MEMORY_WEIGHT_CACHE`` (the default), or a file path that later loads reuse.
    """

    def __init__(self, path: str | Path, threads: int | None = None, weight_cache: str = IN_MEMORY_WEIGHT_CACHE) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path} not found")
        self.threads = threads or available_cores()
        cpu = CpuOptions(num_threads=self.threads, xnnpack_weight_cache_path=weight_cache)
        options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=cpu)
        with stderr_silenced():
            environment = Environment.create(runtime_path=os.path.dirname(ai_edge_litert.__file__))
            try:
                model = CompiledModel.from_file(str(self.path), environment=environment, options=options)
                self.signatures = {key: Signature(model, key) for key in model.get_signature_list()}
            except (ValueError, RuntimeError) as e:
                environment.close()  # here, silenced, rather than whenever it is collected
                raise ValueError(f"{self.path} could not be loaded by LiteRT ({str(e).strip().splitlines()[0]})") from None
        # Released when the graph is collected or, at the latest, at interpreter exit.
        self._finalizer = weakref.finalize(self, _release, self.signatures, model, environment)

    def __getitem__(self, key: str) -> Signature:
        try:
            return self.signatures[key]
        except KeyError:
            raise ValueError(f"{self.path.name} has no signature {key!r} (has {sorted(self.signatures)})") from None

    def close(self) -> None:
        """Release LiteRT's model, buffers and environment now (otherwise done when collected)."""
        self._finalizer()
