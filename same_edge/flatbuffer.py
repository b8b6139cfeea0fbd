"""A structural verifier for ``.tflite`` flatbuffers, and the metadata reader built on it.

LiteRT reads a graph file without bounds checks: a cut or corrupted file can crash the process
that loads it. ``verify_tflite`` walks every table, vector and string LiteRT follows (model,
operator codes, subgraphs, tensors, operators, buffers, metadata, signatures, quantisation) and
checks that each lies inside the file, and that every index (opcode, tensor, buffer, subgraph)
points at something that exists. Only then may LiteRT see the bytes.

Flatbuffer layout, for reference: a table starts with an int32 offset back to its vtable; the
vtable is ``uint16 vtable_bytes, uint16 table_bytes, uint16 field_offset[...]``; reference fields
hold a uint32 offset forward from the field; a vector or string is a uint32 count then its items.
"""

from __future__ import annotations

import mmap
import struct

import numpy as np

FILE_IDENTIFIER = b"TFL3"
# BuiltinOptions union members whose field 0 is an int vector LiteRT reads: Reshape's new_shape,
# Squeeze's squeeze_dims. The other options tables hold scalars, bounds-checked as tables.
_OPTIONS_WITH_VECTOR = {17, 30}


class GraphFileError(ValueError):
    """The bytes are not a structurally valid ``.tflite`` flatbuffer."""


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.size = len(buf)
        self._vtables: dict[int, tuple[int, tuple[int, ...]]] = {}  # flatbuffers share vtables: check each once

    def need(self, pos: int, size: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.size:
            raise GraphFileError(f"{what} at byte {pos} runs past the end of the file ({self.size} bytes)")

    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        return struct.unpack_from("<I", self.buf, pos)[0]

    def table(self, pos: int, what: str) -> _Table:
        self.need(pos, 4, what)
        vtable = pos - struct.unpack_from("<i", self.buf, pos)[0]
        known = self._vtables.get(vtable)
        if known is None:
            self.need(vtable, 4, f"{what}'s vtable")
            vsize, tsize = struct.unpack_from("<HH", self.buf, vtable)
            if vsize < 4 or vsize % 2:
                raise GraphFileError(f"{what}'s vtable at byte {vtable} is malformed")
            self.need(vtable, vsize, f"{what}'s vtable")
            offsets = struct.unpack_from(f"<{(vsize - 4) // 2}H", self.buf, vtable + 4)
            if any(o >= tsize for o in offsets if o):
                raise GraphFileError(f"{what}'s vtable at byte {vtable} has a field outside its table")
            known = self._vtables[vtable] = (tsize, offsets)
        self.need(pos, max(known[0], 4), what)
        return _Table(self, pos, known[1], what)


class _Table:
    def __init__(self, reader: _Reader, pos: int, offsets: tuple[int, ...], what: str) -> None:
        self.reader, self.pos, self.offsets, self.what = reader, pos, offsets, what

    def _field(self, i: int) -> int:
        return self.offsets[i] if i < len(self.offsets) else 0

    def scalar(self, i: int, fmt: str, default: int = 0) -> int:
        off = self._field(i)
        if not off:
            return default
        self.reader.need(self.pos + off, struct.calcsize(fmt), f"{self.what} field {i}")
        return struct.unpack_from("<" + fmt, self.reader.buf, self.pos + off)[0]

    def _target(self, i: int) -> int | None:
        off = self._field(i)
        if not off:
            return None
        at = self.pos + off
        return at + self.reader.u32(at, f"{self.what} field {i}")

    def vector(self, i: int, item_size: int) -> tuple[int, int] | None:
        """(start of items, count) of a vector field, bounds-checked; None where absent."""
        at = self._target(i)
        if at is None:
            return None
        count = self.reader.u32(at, f"{self.what} field {i}")
        self.reader.need(at + 4, count * item_size, f"{self.what} field {i} ({count} items)")
        return at + 4, count

    def ints(self, i: int, dtype: str = "<i4") -> np.ndarray:
        v = self.vector(i, np.dtype(dtype).itemsize)
        return np.zeros(0, dtype) if v is None else np.frombuffer(self.reader.buf, dtype, v[1], v[0])

    def string(self, i: int) -> bytes | None:
        v = self.vector(i, 1)
        if v is None:
            return None
        self.reader.need(v[0] + v[1], 1, f"{self.what} field {i}'s terminator")
        return self.reader.buf[v[0] : v[0] + v[1]]

    def table(self, i: int, what: str) -> _Table | None:
        at = self._target(i)
        return None if at is None else self.reader.table(at, f"{self.what}.{what}")

    def tables(self, i: int, what: str) -> list[_Table]:
        v = self.vector(i, 4)
        if v is None:
            return []
        start, count = v
        return [self.reader.table(start + 4 * k + self.reader.u32(start + 4 * k, what), f"{what}[{k}]") for k in range(count)]


def _in_range(values: np.ndarray | list[int], low: int, high: int, what: str) -> None:
    values = values.tolist() if isinstance(values, np.ndarray) else values  # short: Python beats numpy's reduce
    if values and (min(values) < low or max(values) >= high):
        raise GraphFileError(f"{what} holds an index outside [{low}, {high})")


def _model(buf: bytes) -> tuple[_Reader, _Table]:
    if len(buf) < 8:
        raise GraphFileError(f"{len(buf)} bytes is too short for a .tflite file")
    if buf[4:8] != FILE_IDENTIFIER:
        raise GraphFileError("no TFL3 file identifier: not a .tflite file")
    r = _Reader(buf)
    return r, r.table(r.u32(0, "root offset"), "model")


def verify_tflite(buf: bytes) -> None:
    """Raise ``GraphFileError`` unless ``buf`` is a structurally valid ``.tflite`` flatbuffer."""
    r, model = _model(buf)
    opcodes = model.tables(1, "operator_codes")
    for op in opcodes:
        op.string(1)
    buffers = model.tables(4, "buffers")
    for i, b in enumerate(buffers):
        b.vector(0, 1)
        offset, size = b.scalar(1, "Q"), b.scalar(2, "Q")
        if offset > 1 and offset + size > r.size:  # large models keep weights past the flatbuffer
            raise GraphFileError(f"buffer {i} ({size} bytes at {offset}) runs past the end of the file")
    subgraphs = model.tables(2, "subgraphs")
    if not subgraphs:
        raise GraphFileError("the model has no subgraph")
    model.string(3)
    _in_range(model.ints(5), 0, len(buffers), "metadata_buffer")
    for md in model.tables(6, "metadata"):
        md.string(0)
        _in_range([md.scalar(1, "I")], 0, len(buffers), "metadata buffer")
    tensor_counts = []
    for s, sg in enumerate(subgraphs):
        tensors = sg.tables(0, f"subgraph {s} tensors")
        tensor_counts.append(len(tensors))
        for t in tensors:
            t.ints(0)
            if not 0 <= t.scalar(1, "b") < 64:
                raise GraphFileError(f"{t.what} has an unknown type")
            _in_range([t.scalar(2, "I")], 0, max(len(buffers), 1), f"{t.what} buffer")
            t.string(3)
            q = t.table(4, "quantization")
            if q is not None:
                q.ints(0, "<f4"), q.ints(1, "<f4"), q.ints(2, "<f4"), q.ints(3, "<i8")
                q.table(5, "details")
            t.table(6, "sparsity")
            t.ints(7)
            t.tables(9, "variant_tensors")
        n = len(tensors)
        _in_range(sg.ints(1), 0, n, f"subgraph {s} inputs")
        _in_range(sg.ints(2), 0, n, f"subgraph {s} outputs")
        for op in sg.tables(3, f"subgraph {s} operators"):
            _in_range([op.scalar(0, "I")], 0, len(opcodes), f"{op.what} opcode")
            _in_range(op.ints(1), -1, n, f"{op.what} inputs")
            _in_range(op.ints(2), -1, n, f"{op.what} outputs")
            options = op.table(4, "builtin_options")
            if options is not None and op.scalar(3, "B") in _OPTIONS_WITH_VECTOR:
                options.ints(0)
            op.vector(5, 1)
            op.vector(7, 1)
            _in_range(op.ints(8), -1, n, f"{op.what} intermediates")
            large_offset, large_size = op.scalar(9, "Q"), op.scalar(10, "Q")
            if large_offset > 1 and large_offset + large_size > r.size:
                raise GraphFileError(f"{op.what}'s custom options run past the end of the file")
            op.table(12, "builtin_options_2")
        sg.string(4)
    for sig in model.tables(7, "signature_defs"):
        index = sig.scalar(4, "I")
        _in_range([index], 0, len(subgraphs), f"{sig.what} subgraph_index")
        n = tensor_counts[index]
        sig.string(2)
        for field in (0, 1):
            for tm in sig.tables(field, f"{sig.what} tensors"):
                tm.string(0)
                _in_range([tm.scalar(1, "I")], 0, n, f"{tm.what} tensor_index")


def metadata_entry(buf: bytes | mmap.mmap, key: str) -> bytes | None:
    """The bytes of the metadata entry named ``key`` in a ``.tflite`` file, or None. Reads only the
    model table, the metadata entries and the one buffer named (on an ``mmap``, a few pages);
    native/src/same_edge.c's ``tflite_metadata`` is the C counterpart."""
    r, model = _model(buf)
    buffers = model.vector(4, 4)
    count = 0 if buffers is None else buffers[1]
    for md in model.tables(6, "metadata"):
        if md.string(0) == key.encode():
            index = md.scalar(1, "I")
            if index >= count:
                raise GraphFileError(f"metadata {key!r} names buffer {index} of {count}")
            at = buffers[0] + 4 * index
            b = r.table(at + r.u32(at, "buffers"), f"buffers[{index}]")
            offset, size = b.scalar(1, "Q"), b.scalar(2, "Q")
            if offset > 1:
                r.need(offset, size, f"metadata {key!r}")
                return bytes(buf[offset : offset + size])
            v = b.vector(0, 1)
            return b"" if v is None else bytes(buf[v[0] : v[0] + v[1]])
    return None
