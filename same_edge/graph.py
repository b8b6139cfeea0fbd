"""A thin LiteRT wrapper: one ``.tflite`` file, its signatures, compiled once for the CPU.

The graph runs as a LiteRT ``CompiledModel`` on the XNNPACK CPU accelerator with XNNPACK's
weight cache. The exported graphs hold several signatures over one set of weights (``encode_1``,
``encode_4``, ... share every matrix); without the cache XNNPACK packs each signature's weights
separately, which costs one packed copy of the model per signature. With it, once per graph.

Threads: a ``Graph`` may be shared. A call writes its inputs, runs and reads its outputs under the
graph's lock, so concurrent calls are serialised per graph and never see each other's tensors
(an encoder and a decoder, being two graphs, run concurrently).

A file is checked before LiteRT sees it (size and sha256 against the manifest where one is given,
then the flatbuffer's structure), because LiteRT trusts its input: a damaged file must be an
error, not a crashed process.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
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

from .errors import ConfigError, ModelDirError, StreamError
from .flatbuffer import GraphFileError, verify_tflite

# XNNPACK's name for a weight cache kept in an anonymous memory file (memfd_create: Linux, Android).
IN_MEMORY_WEIGHT_CACHE = ":memory"
MAX_THREADS = 256

# fd 2 is one per process: swaps of it must not interleave across threads.
_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for a while: LiteRT's C++ side logs there at INFO level when it
    creates and destroys its environment and accelerators. Errors still reach Python as exception
    messages. Safe to nest and to use from several threads."""
    with _STDERR_LOCK:
        with contextlib.suppress(AttributeError, OSError, ValueError):  # sys.stderr is None when fd 2 was closed
            sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = None
        if devnull != 2:  # fd 2 open (if it was closed, /dev/null just took its place: it stays closed after)
            saved = os.dup(2)
            os.dup2(devnull, 2)
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            os.close(devnull)


_teardown_quieted = False


def _quiet_litert_teardown() -> None:
    """LiteRT's accelerator registry logs at INFO level as C++ statics are destroyed, after Python
    has finished. Register once, at the first load, an exit hook that points fd 2 at /dev/null
    for that teardown only (Python runs exit hooks last-registered first: this one runs after the
    hooks of everything imported later)."""
    global _teardown_quieted
    with _STDERR_LOCK:
        if _teardown_quieted:
            return
        _teardown_quieted = True

    def hook() -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)

    atexit.register(hook)


_TEMPORARY_CACHE_PREFIX = "same-edge-weights-"  # + the owner's pid + "-" + mkdtemp's random suffix


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _temporary_cache_dir() -> str:
    """A new directory for a temporary weight-cache file. A process killed by a signal leaves its
    own behind (its finalizers never run): remove those of processes that no longer exist first,
    recognised by our prefix and their pid. Not on Windows, where ``os.kill`` would terminate."""
    if os.name != "nt":
        for entry in os.scandir(tempfile.gettempdir()):
            owner = re.fullmatch(rf"{_TEMPORARY_CACHE_PREFIX}(\d+)-\w+", entry.name)
            if owner and entry.is_dir(follow_symlinks=False) and not _process_exists(int(owner.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_TEMPORARY_CACHE_PREFIX}{os.getpid()}-")


def default_weight_cache() -> str:
    """XNNPACK's in-memory weight cache where the OS has ``memfd_create``; elsewhere (macOS,
    Windows) a temporary file, removed when the graph is closed."""
    return IN_MEMORY_WEIGHT_CACHE if hasattr(os, "memfd_create") else ""


def weight_cache_file(directory: str | Path, graph: str, sha256: str) -> str:
    """The file in ``directory`` where XNNPACK keeps one graph's packed weights between loads:
    ``<graph>-<first 16 hex digits of its sha256>.xnn`` (``encoder-3f9c...xnn``). XNNPACK looks
    packed weights up by the graph's buffer identifiers, not by their contents, so each graph needs
    its own file, and a graph replaced by another export must not meet the old one's file."""
    return os.path.join(directory, f"{graph}-{sha256[:16]}.xnn")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_threads(threads: int | None) -> int:
    """A thread count (None: every available core), refused outside ``[1, MAX_THREADS]``."""
    if threads is None:
        return available_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}")
    return threads


class Signature:
    """One signature of a graph: ``sig(**inputs) -> {name: array}`` (float32 arrays, static shapes)."""

    def __init__(self, model: CompiledModel, key: str, lock: threading.Lock) -> None:
        self.key = key
        self.closed = False
        self._model = model
        self._lock = lock
        names = model.get_signature_list()[key]
        in_details, out_details = model.get_input_tensor_details(key), model.get_output_tensor_details(key)
        self.inputs = {n: tuple(int(s) for s in in_details[n]["shape"]) for n in names["inputs"]}
        self.outputs = {n: tuple(int(s) for s in out_details[n]["shape"]) for n in names["outputs"]}
        self._sizes = {n: int(np.prod(shape)) for n, shape in self.outputs.items()}
        self._in = {n: model.create_input_buffer_by_name(key, n) for n in self.inputs}
        self._out = {n: model.create_output_buffer_by_name(key, n) for n in self.outputs}
        for name, shape in self.inputs.items():  # defined contents (and LiteRT's lazy set-up, done here)
            self._in[name].write(np.zeros(shape, np.float32))

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        for name, shape in self.inputs.items():
            value = inputs[name]
            if value.shape != shape or value.dtype != np.float32:
                raise StreamError(f"{self.key}.{name}: expected float32 {list(shape)}, got {value.dtype} {list(value.shape)}")
        with self._lock:
            if self.closed:
                raise StreamError(f"{self.key}: the graph was closed (Codec.close())")
            for name in self.inputs:
                self._in[name].write(np.ascontiguousarray(inputs[name]))
            self._model.run_by_name(self.key, self._in, self._out)
            return {name: self._out[name].read(self._sizes[name], np.float32).reshape(shape)
                    for name, shape in self.outputs.items()}

    def _release(self) -> None:
        for buffer in (*self._in.values(), *self._out.values()):
            buffer.destroy()


def _release(signatures: dict[str, Signature], model: CompiledModel, environment: Environment, cache_dir: str | None,
             data: bytes) -> None:
    """Close a graph's LiteRT objects; ``data``, the bytes the model runs from, is held until now."""
    with stderr_silenced():  # destroying the environment logs each accelerator
        for sig in signatures.values():
            sig._release()
        model.close()
        environment.close()
    if cache_dir is not None:
        shutil.rmtree(cache_dir, ignore_errors=True)


def read_graph_file(path: Path, size: int | None = None, sha256: str | None = None) -> bytes:
    """The bytes of a graph file, once checked: the size and hash the manifest records (when
    given) and a structurally valid ``.tflite`` flatbuffer. LiteRT runs these very bytes, so a file
    replaced or truncated later (``cp`` over a loaded model) cannot reach a loaded graph, where a
    memory-mapped file would crash the process with SIGBUS at its next call."""
    try:  # non-blocking: a FIFO in the file's place must be refused, not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ModelDirError(f"{path} not found") from None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ModelDirError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        data = f.read() if size is None else f.read(size + 1)
    check_graph_bytes(data, str(path), size, sha256, read_past_size=True)
    return data


def check_graph_bytes(data: bytes, source: str, size: int | None = None, sha256: str | None = None,
                      read_past_size: bool = False) -> None:
    """Refuse graph bytes that are not the size and hash the manifest records (when given) or not a
    structurally valid ``.tflite`` flatbuffer; ``source`` names them in messages (a path, or
    ``"encoder.tflite (from memory)"``). ``read_past_size``: ``data`` is a file read up to
    ``size + 1`` bytes, so a longer one is "more than" that."""
    if size is not None and len(data) != size:
        more = "more than " if read_past_size and len(data) > size else ""
        raise ModelDirError(f"{source} is {more}{len(data)} bytes, the manifest says {size}: the file is damaged or "
                            "not this model's")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ModelDirError(f"{source} does not match the sha256 in the manifest: the file is damaged or not this model's")
    try:
        verify_tflite(data)
    except GraphFileError as e:
        raise ModelDirError(f"{source} is not a valid .tflite graph ({e})") from None


def _file_size_limited() -> bool:
    """Whether this process has a finite file-size limit (``ulimit -f``). XNNPACK's weight cache is
    a file (``:memory`` is a memfd, which counts too) and a write past the limit aborts the process
    inside XNNPACK, so under a limit the graphs load without it."""
    try:
        import resource
    except ImportError:  # Windows
        return False
    return resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY


class Graph:
    """A ``.tflite`` graph with named signatures, run by LiteRT on the CPU (XNNPACK) with ``threads``
    threads (None: every available core; LiteRT's own default would be one).

    ``weight_cache``: where XNNPACK keeps the weights it packs, so that the signatures share one
    packed copy: None for ``default_weight_cache()``, ``IN_MEMORY_WEIGHT_CACHE``, or a file path
    that later loads of this same graph reuse (``weight_cache_file`` names one; never give two
    graphs one file). Under a finite file-size limit (``ulimit -f``) there is no cache: each
    signature packs its own copy (more memory, the same outputs). ``size``/``sha256``: what the
    file must be (from the manifest). The file is read once (``read_graph_file``); ``Graph.from_bytes``
    takes bytes already in memory, checked alike.

    ``path``: the file (None for a graph from memory); ``source``: what messages call the graph (the
    path, or ``"encoder.tflite (from memory)"``), ``name`` its last part; ``data``: the bytes LiteRT
    runs (None once closed).

    ``close()`` waits for a running call; a call after it raises ``StreamError``.
    """

    path: Path | None
    source: str
    name: str
    data: bytes | None

    def __init__(self, path: str | Path, threads: int | None = None, weight_cache: str | None = None,
                 size: int | None = None, sha256: str | None = None) -> None:
        self.path = Path(path)
        self.source, self.name = str(self.path), self.path.name
        self._open(read_graph_file(self.path, size, sha256), threads, weight_cache)

    @classmethod
    def from_bytes(cls, data: bytes, name: str, threads: int | None = None, weight_cache: str | None = None,
                   size: int | None = None, sha256: str | None = None) -> Graph:
        """A graph from its bytes (a ``.tflite`` file's contents, ``bytes``: LiteRT runs them in place,
        so they must not change), checked as a file is; ``name``: its file name, for messages
        (``"encoder.tflite"`` is called ``"encoder.tflite (from memory)"``)."""
        if not isinstance(data, bytes):
            raise ConfigError(f"{name} must be bytes, got {type(data).__name__}")
        graph = cls.__new__(cls)
        graph.path, graph.source = None, f"{name} (from memory)"
        graph.name = graph.source
        check_graph_bytes(data, graph.source, size, sha256)
        graph._open(data, threads, weight_cache)
        return graph

    def _open(self, data: bytes, threads: int | None, weight_cache: str | None) -> None:
        self.threads = check_threads(threads)
        cache_dir = None
        if _file_size_limited():
            weight_cache = ""  # XNNPACK's "no cache"
        else:
            if weight_cache is None:
                weight_cache = default_weight_cache()
            if not weight_cache:
                cache_dir = _temporary_cache_dir()
                weight_cache = os.path.join(cache_dir, "weights.xnn")
        self.weight_cache = weight_cache
        cpu = CpuOptions(num_threads=self.threads, xnnpack_weight_cache_path=weight_cache)
        options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=cpu)
        _quiet_litert_teardown()
        lock = threading.Lock()
        with stderr_silenced():
            environment = Environment.create(runtime_path=os.path.dirname(ai_edge_litert.__file__))
            try:
                model = CompiledModel.from_buffer(data, environment=environment, options=options)
                self.signatures = {key: Signature(model, key, lock) for key in model.get_signature_list()}
            except (ValueError, RuntimeError) as e:
                environment.close()  # here, silenced, rather than whenever it is collected
                if cache_dir is not None:
                    shutil.rmtree(cache_dir, ignore_errors=True)
                raise ModelDirError(f"{self.source} could not be loaded by LiteRT ({str(e).strip().splitlines()[0]})") from None
        self._lock = lock
        self.data = data
        # Released when the graph is collected or, at the latest, at interpreter exit; LiteRT runs
        # `data` in place: it lives as long as the model.
        self._finalizer = weakref.finalize(self, _release, self.signatures, model, environment, cache_dir, data)

    def __getitem__(self, key: str) -> Signature:
        try:
            return self.signatures[key]
        except KeyError:
            raise ModelDirError(f"{self.name} has no signature {key!r} (has {sorted(self.signatures)})") from None

    def close(self) -> None:
        """Release LiteRT's model, buffers and environment now (otherwise done when collected),
        once a call running on another thread has returned."""
        with self._lock:
            for sig in self.signatures.values():
                sig.closed = True
            self._finalizer()
            self.data = None
