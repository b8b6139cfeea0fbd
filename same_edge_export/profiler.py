"""Per-op profiles of a ``.tflite`` signature on LiteRT's CPU accelerator (XNNPACK), through ctypes.

The Python ``CompiledModel`` wrapper does not expose LiteRT's profiler, but ``libLiteRt.so`` in
the ai-edge-litert wheel exports the C API. This module drives it directly: a compiled model
with the ``runtime_options_string`` opaque option ``enable_profiling = true`` (and the
``xnnpack`` option: threads, in-memory weight cache, as ``same_edge.graph.Graph`` uses), then
``LiteRtCompiledModelGetProfiler``, start, runs, stop, ``LiteRtGetProfileSummary``. The summary
lists every executed node: XNNPACK's operators as ``[Delegate]:i`` (``i`` restarts at 0 in each
delegate partition) and ops left to LiteRT's default kernels as ``[Builtin]:i``.

No torch; declarations follow the C headers of ``litert/c`` (LiteRT 2.x): every handle is an
opaque pointer, ``LiteRtParamIndex`` is ``size_t``, ``LiteRtStatus`` an ``int`` (0 = ok).
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ai_edge_litert
import numpy as np

from same_edge.graph import IN_MEMORY_WEIGHT_CACHE, stderr_silenced

_P = ctypes.c_void_p
_SIZE = ctypes.c_size_t
_HW_CPU = 1  # kLiteRtHwAcceleratorCpu


class ProfilerError(RuntimeError):
    """A LiteRT C call failed (the message names it and its status)."""


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so"))
    sigs: dict[str, list] = {
        "LiteRtCreateEnvironment": [ctypes.c_int, _P, ctypes.POINTER(_P)],
        "LiteRtDestroyEnvironment": [_P],
        "LiteRtCreateModelFromFile": [_P, ctypes.c_char_p, ctypes.POINTER(_P)],
        "LiteRtDestroyModel": [_P],
        "LiteRtGetNumModelSignatures": [_P, ctypes.POINTER(_SIZE)],
        "LiteRtGetModelSignature": [_P, _SIZE, ctypes.POINTER(_P)],
        "LiteRtGetSignatureKey": [_P, ctypes.POINTER(ctypes.c_char_p)],
        "LiteRtGetNumSignatureInputs": [_P, ctypes.POINTER(_SIZE)],
        "LiteRtGetNumSignatureOutputs": [_P, ctypes.POINTER(_SIZE)],
        "LiteRtGetSignatureInputName": [_P, _SIZE, ctypes.POINTER(ctypes.c_char_p)],
        "LiteRtGetSignatureInputTensorByIndex": [_P, _SIZE, ctypes.POINTER(_P)],
        "LiteRtGetSignatureOutputTensorByIndex": [_P, _SIZE, ctypes.POINTER(_P)],
        "LiteRtGetRankedTensorType": [_P, _P],
        "LiteRtCreateOptions": [ctypes.POINTER(_P)],
        "LiteRtSetOptionsHardwareAccelerators": [_P, ctypes.c_int],
        "LiteRtCreateOpaqueOptions": [ctypes.c_char_p, _P, _P, ctypes.POINTER(_P)],
        "LiteRtAddOpaqueOptions": [_P, _P],
        "LiteRtCreateCompiledModel": [_P, _P, _P, ctypes.POINTER(_P)],
        "LiteRtDestroyCompiledModel": [_P],
        "LiteRtGetCompiledModelInputBufferRequirements": [_P, _SIZE, _SIZE, ctypes.POINTER(_P)],
        "LiteRtGetCompiledModelOutputBufferRequirements": [_P, _SIZE, _SIZE, ctypes.POINTER(_P)],
        "LiteRtCreateManagedTensorBufferFromRequirements": [_P, _P, _P, ctypes.POINTER(_P)],
        "LiteRtDestroyTensorBuffer": [_P],
        "LiteRtGetTensorBufferHostMemory": [_P, ctypes.POINTER(_P)],
        "LiteRtGetTensorBufferPackedSize": [_P, ctypes.POINTER(_SIZE)],
        "LiteRtRunCompiledModel": [_P, _SIZE, _SIZE, _P, _SIZE, _P],
        "LiteRtCompiledModelGetProfiler": [_P, ctypes.POINTER(_P)],
        "LiteRtStartProfiler": [_P],
        "LiteRtStopProfiler": [_P],
        "LiteRtResetProfiler": [_P],
        "LiteRtGetProfileSummary": [_P, _P, ctypes.POINTER(_P)],
    }
    for name, argtypes in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = None if name.startswith("LiteRtDestroy") else ctypes.c_int
    return lib


_LIB: ctypes.CDLL | None = None
_LIBC = ctypes.CDLL(None)
_LIBC.strdup.restype = _P
_LIBC.strdup.argtypes = [ctypes.c_char_p]
_LIBC.free.argtypes = [_P]
_FREE = ctypes.cast(_LIBC.free, _P)


def _lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        _LIB = _library()
    return _LIB


def _check(status: int, call: str) -> None:
    if status != 0:
        raise ProfilerError(f"{call} failed with LiteRT status {status}")


@dataclass
class Node:
    """One executed node of a profiled signature: ``op`` as XNNPACK or LiteRT names it, its mean
    time per call in ms, and whether XNNPACK ran it (``delegated``) or LiteRT's default kernels."""

    op: str
    ms: float
    delegated: bool
    index: int


@dataclass
class Profile:
    """Per-node times of one signature, averaged over ``runs`` calls, and the wall time per call."""

    signature: str
    runs: int
    wall_ms: float
    nodes: list[Node] = field(default_factory=list)

    @property
    def partitions(self) -> int:
        """XNNPACK delegate partitions executed (each restarts its node index at 0)."""
        return sum(1 for n in self.nodes if n.delegated and n.index == 0)

    @property
    def undelegated(self) -> list[str]:
        """Op names of the nodes that XNNPACK did not take, in run order."""
        return [n.op for n in self.nodes if not n.delegated]

    @property
    def node_ms(self) -> float:
        """Sum of the nodes' mean times per call, ms."""
        return sum(n.ms for n in self.nodes)

    def by_type(self) -> list[tuple[str, int, float, float]]:
        """(op type, node count, ms per call, share of the nodes' total), slowest first."""
        total = self.node_ms or 1.0
        groups: dict[str, list[float]] = {}
        for n in self.nodes:
            groups.setdefault(n.op, []).append(n.ms)
        rows = [(op, len(v), sum(v), sum(v) / total) for op, v in groups.items()]
        return sorted(rows, key=lambda r: -r[2])

    def fully_connected_ms(self) -> float:
        """ms per call in FULLY_CONNECTED kernels (XNNPACK's ``Fully Connected`` operators)."""
        return sum(n.ms for n in self.nodes if n.op.startswith("Fully Connected") or n.op == "FULLY_CONNECTED")

    def table(self) -> str:
        """Markdown table per op type: count, ms per call, share; then the totals."""
        lines = [f"`{self.signature}`: {self.wall_ms:.2f} ms per call (wall, mean of {self.runs}), nodes sum "
                 f"{self.node_ms:.2f} ms, fully connected {self.fully_connected_ms():.2f} ms "
                 f"({100 * self.fully_connected_ms() / (self.node_ms or 1):.0f}%), {self.partitions} XNNPACK "
                 f"partition(s)\n", "| op | nodes | ms per call | share |", "|---|---|---|---|"]
        lines += [f"| {op} | {count} | {ms:.3f} | {100 * share:.1f}% |" for op, count, ms, share in self.by_type()]
        return "\n".join(lines)


# A Run Order row of LiteRT's summary: node type, start, first, avg ms, %, cdf%, mem KB, times called, [Kind]:index.
_ROW = re.compile(r"^\s*(?P<op>\S.*?)\s+[\d.]+\s+[\d.]+\s+(?P<ms>[\d.]+)\s+[\d.]+%\s+[\d.]+%\s+[\d.]+\s+\d+\s+"
                  r"\[(?P<kind>\w+)\]:(?P<index>\d+)\s*$")


def parse_summary(summary: str) -> list[Node]:
    """The nodes of the ``Run Order`` section of ``LiteRtGetProfileSummary``'s text, in run order."""
    nodes, in_run_order = [], False
    for line in summary.splitlines():
        if line.startswith("====="):
            in_run_order = "Run Order" in line
            continue
        m = _ROW.match(line) if in_run_order else None
        if m:
            delegated = m["kind"] == "Delegate"
            op = m["op"].removeprefix("Delegate/") if delegated else m["op"]
            nodes.append(Node(op=op, ms=float(m["ms"]), delegated=delegated, index=int(m["index"])))
    return nodes


def sample_inputs(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible float32 inputs: small random values; ``first`` and ``keep`` flags 1.0."""
    rng = np.random.default_rng(seed)
    return {name: (np.ones(shape, np.float32) if name in ("first", "keep")
                   else (0.1 * rng.standard_normal(shape)).astype(np.float32)) for name, shape in shapes.items()}


class ProfiledGraph:
    """A ``.tflite`` graph compiled for the CPU with LiteRT's profiler on.

    ``threads``: XNNPACK threads; ``weight_cache``: as ``same_edge.graph.Graph`` (in memory by
    default, so the timing is the runtime's). Use as a context manager or call ``close``.
    """

    def __init__(self, path: str | Path, threads: int = 2, weight_cache: str = IN_MEMORY_WEIGHT_CACHE) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ProfilerError(f"{self.path} not found")
        self.threads, self.weight_cache = int(threads), weight_cache
        lib = self._lib = _lib()
        self._env, self._model, self._compiled, self._profiler = _P(), _P(), _P(), _P()
        self._buffers: list[_P] = []
        with stderr_silenced():  # LiteRT logs its accelerators at INFO level on fd 2
            _check(lib.LiteRtCreateEnvironment(0, None, ctypes.byref(self._env)), "LiteRtCreateEnvironment")
            try:
                _check(lib.LiteRtCreateModelFromFile(self._env, str(self.path).encode(), ctypes.byref(self._model)),
                       f"LiteRtCreateModelFromFile({self.path})")
                self.signatures = self._signatures()
            except BaseException:
                self.close()
                raise

    def _compile(self) -> None:
        """A fresh compiled model and its profiler: LiteRT's summary accumulates every event since
        the compiled model was made (``LiteRtResetProfiler`` does not clear it), so each profile
        gets its own."""
        lib = self._lib
        options = _P()
        _check(lib.LiteRtCreateOptions(ctypes.byref(options)), "LiteRtCreateOptions")
        _check(lib.LiteRtSetOptionsHardwareAccelerators(options, _HW_CPU), "LiteRtSetOptionsHardwareAccelerators")
        self._add_toml(options, "xnnpack", f'num_threads = {self.threads}\nweight_cache_file_path = "{self.weight_cache}"\n')
        self._add_toml(options, "runtime_options_string", "enable_profiling = true\n")
        # The options object is left allocated (a few bytes): whether LiteRtCreateCompiledModel
        # takes ownership differs between LiteRT versions, and a double free would crash.
        with stderr_silenced():
            _check(lib.LiteRtCreateCompiledModel(self._env, self._model, options, ctypes.byref(self._compiled)),
                   "LiteRtCreateCompiledModel")
        _check(lib.LiteRtCompiledModelGetProfiler(self._compiled, ctypes.byref(self._profiler)),
               "LiteRtCompiledModelGetProfiler")
        if not self._profiler:
            raise ProfilerError("LiteRtCompiledModelGetProfiler returned no profiler (profiling not enabled)")

    def _release_compiled(self) -> None:
        lib = self._lib
        with stderr_silenced():
            for buffer in self._buffers:
                lib.LiteRtDestroyTensorBuffer(buffer)
            self._buffers = []
            if self._compiled:
                lib.LiteRtDestroyCompiledModel(self._compiled)
            self._compiled, self._profiler = _P(), _P()

    def _add_toml(self, options: _P, identifier: str, toml: str) -> None:
        """Attach an opaque option: an identifier and a TOML payload that LiteRT frees with ``free``."""
        payload = _LIBC.strdup(toml.encode())
        opaque = _P()
        status = self._lib.LiteRtCreateOpaqueOptions(identifier.encode(), payload, _FREE, ctypes.byref(opaque))
        if status != 0:
            _LIBC.free(payload)
        _check(status, f"LiteRtCreateOpaqueOptions({identifier})")
        _check(self._lib.LiteRtAddOpaqueOptions(options, opaque), f"LiteRtAddOpaqueOptions({identifier})")

    def _signatures(self) -> dict[str, tuple[int, _P]]:
        lib, count = self._lib, _SIZE()
        _check(lib.LiteRtGetNumModelSignatures(self._model, ctypes.byref(count)), "LiteRtGetNumModelSignatures")
        out = {}
        for i in range(count.value):
            sig, key = _P(), ctypes.c_char_p()
            _check(lib.LiteRtGetModelSignature(self._model, i, ctypes.byref(sig)), "LiteRtGetModelSignature")
            _check(lib.LiteRtGetSignatureKey(sig, ctypes.byref(key)), "LiteRtGetSignatureKey")
            out[key.value.decode()] = (i, sig)
        return out

    def _make_buffers(self, signature: str, kind: str) -> list[tuple[str, _P, int, int]]:
        """(name, buffer, host address, bytes) per input or output of ``signature``."""
        lib = self._lib
        index, sig = self.signatures[signature]
        count = _SIZE()
        _check(getattr(lib, f"LiteRtGetNumSignature{kind}s")(sig, ctypes.byref(count)), f"LiteRtGetNumSignature{kind}s")
        out = []
        for j in range(count.value):
            tensor, name = _P(), ctypes.c_char_p()
            if kind == "Input":
                _check(lib.LiteRtGetSignatureInputName(sig, j, ctypes.byref(name)), "LiteRtGetSignatureInputName")
            _check(getattr(lib, f"LiteRtGetSignature{kind}TensorByIndex")(sig, j, ctypes.byref(tensor)),
                   f"LiteRtGetSignature{kind}TensorByIndex")
            # LiteRtRankedTensorType is only handed back to LiteRT: room enough for any layout version.
            tensor_type = ctypes.create_string_buffer(1024)
            _check(lib.LiteRtGetRankedTensorType(tensor, tensor_type), "LiteRtGetRankedTensorType")
            requirements, buffer = _P(), _P()
            _check(getattr(lib, f"LiteRtGetCompiledModel{kind}BufferRequirements")(
                self._compiled, index, j, ctypes.byref(requirements)), f"LiteRtGetCompiledModel{kind}BufferRequirements")
            _check(lib.LiteRtCreateManagedTensorBufferFromRequirements(self._env, tensor_type, requirements,
                                                                       ctypes.byref(buffer)),
                   "LiteRtCreateManagedTensorBufferFromRequirements")
            self._buffers.append(buffer)
            address, size = _P(), _SIZE()
            _check(lib.LiteRtGetTensorBufferHostMemory(buffer, ctypes.byref(address)), "LiteRtGetTensorBufferHostMemory")
            _check(lib.LiteRtGetTensorBufferPackedSize(buffer, ctypes.byref(size)), "LiteRtGetTensorBufferPackedSize")
            out.append(((name.value or b"").decode(), buffer, address.value, size.value))
        return out

    def profile(self, signature: str, inputs: Mapping[str, np.ndarray] | None = None, runs: int = 5,
                warmup: int = 2) -> Profile:
        """Profile ``runs`` calls of ``signature`` after ``warmup`` unprofiled ones.

        ``inputs``: float32 arrays by input name (default: ``sample_inputs`` of the input sizes,
        which the graph's float32 inputs define).
        """
        if signature not in self.signatures:
            raise ProfilerError(f"{self.path.name} has no signature {signature!r} (has {sorted(self.signatures)})")
        self._compile()
        try:
            return self._profile(signature, inputs, runs, warmup)
        finally:
            self._release_compiled()

    def _profile(self, signature: str, inputs: Mapping[str, np.ndarray] | None, runs: int, warmup: int) -> Profile:
        lib = self._lib
        ins, outs = self._make_buffers(signature, "Input"), self._make_buffers(signature, "Output")
        values = dict(inputs) if inputs is not None else sample_inputs({n: (size // 4,) for n, _, _, size in ins})
        for name, _, address, size in ins:
            data = np.ascontiguousarray(values[name], dtype=np.float32).reshape(-1)
            if data.nbytes != size:
                raise ProfilerError(f"{signature}.{name}: expected {size // 4} float32 values, got {data.size}")
            ctypes.memmove(address, data.ctypes.data, size)
        in_array = (_P * len(ins))(*(b for _, b, _, _ in ins))
        out_array = (_P * len(outs))(*(b for _, b, _, _ in outs))
        index = self.signatures[signature][0]

        def run() -> None:
            _check(lib.LiteRtRunCompiledModel(self._compiled, index, len(ins), in_array, len(outs), out_array),
                   f"LiteRtRunCompiledModel({signature})")

        for _ in range(warmup):
            run()
        _check(lib.LiteRtResetProfiler(self._profiler), "LiteRtResetProfiler")
        _check(lib.LiteRtStartProfiler(self._profiler), "LiteRtStartProfiler")
        t0 = time.perf_counter()
        for _ in range(runs):
            run()
        wall_ms = (time.perf_counter() - t0) / max(runs, 1) * 1e3
        _check(lib.LiteRtStopProfiler(self._profiler), "LiteRtStopProfiler")
        summary = _P()
        _check(lib.LiteRtGetProfileSummary(self._profiler, self._compiled, ctypes.byref(summary)), "LiteRtGetProfileSummary")
        try:
            text = ctypes.string_at(summary.value).decode(errors="replace") if summary.value else ""
        finally:
            _LIBC.free(summary)  # the caller frees the summary with free(), as the header says
        return Profile(signature=signature, runs=runs, wall_ms=wall_ms, nodes=parse_summary(text))

    def close(self) -> None:
        """Release buffers, compiled model, model and environment (idempotent)."""
        self._release_compiled()
        lib = self._lib
        with stderr_silenced():
            if self._model:
                lib.LiteRtDestroyModel(self._model)
                self._model = _P()
            if self._env:
                lib.LiteRtDestroyEnvironment(self._env)
                self._env = _P()

    def __enter__(self) -> ProfiledGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def profile_signature(path: str | Path, signature: str, threads: int = 2, runs: int = 5, warmup: int = 2) -> Profile:
    """Compile ``path``, profile one signature, release everything."""
    with ProfiledGraph(path, threads=threads) as graph:
        return graph.profile(signature, runs=runs, warmup=warmup)
