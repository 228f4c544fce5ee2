"""Readers of stored operands for ``crossent eval``: ``.npy`` files and
``.npz`` members as sources that hand out one chunk at a time.

How memory stays bounded: a ``.npy`` file (and an uncompressed ``.npz``
member, which is a ``.npy`` stored raw inside the zip) is memory-mapped one
chunk at a time, and each chunk's mapping is dropped before the next one is
made.  A compressed ``.npz`` member cannot be mapped; it is decompressed as a
stream, one chunk at a time, into a reused buffer.  Chunks are cut along the
first axis that is not the class axis; a Fortran-ordered file, or a class axis
first, makes that cut strided in the file, and then the whole file is mapped
(or, for a compressed member, loaded) at once.  A chunk is never smaller
than the fewest rows that fill whole blocks: 64 / gcd(64, rows per index) or
4096 / gcd(4096, elements per row), e.g. 4096 rows when a row holds an odd
number of elements.

What is checked before any data is read (``_read_npy_header``,
``_check_member``): the header is parsed once, as a literal (never
evaluated); version 1.0, 2.0 or 3.0; header length within NumPy's bound;
exactly the keys ``descr``, ``fortran_order`` (a bool) and ``shape`` (a tuple
of non-negative ints whose byte size fits in an intp and in the file);
``descr`` a real dtype (float16/32/64, integers, bool; either byte order).
An ``.npz`` member must be a regular, unencrypted, stored or deflated file
whose sizes in the zip directory are possible for the archive (a deflated
member expands at most ``MAX_DEFLATE_RATIO`` times), so that a zip bomb
costs memory bounded by the archive's size.  Every refusal is one line
naming the operand, the file (and member) and the bad field.  A stored
member's CRC is not verified, as a ``.npy`` file has none: checking it would
read the file twice.
"""
import ast
import math
import mmap
import os
import stat
import struct
import zipfile
import zlib
from typing import NamedTuple

import numpy as np


# ================================================================ sources
# A source is one operand, in memory or in a file.  ``take(axis, start, stop)``
# returns the slice [start:stop] along ``axis``; ``whole()`` the whole array.

class InMemory:
    def __init__(self, array, label):
        self.array, self.label = array, label
        self.shape, self.dtype = array.shape, array.dtype

    def take(self, axis, start, stop):
        return self.array[(slice(None),) * axis + (slice(start, stop),)]

    def whole(self):
        return self.array


class MappedNpy:
    """An array stored raw from byte ``data_offset`` of an open file (a .npy
    file, or an uncompressed .npz member): chunks along axis 0 of a C-ordered
    array are contiguous bytes, each mapped on its own."""

    def __init__(self, file, data_offset, shape, dtype, fortran_order, label):
        self.file, self.data_offset, self.label = file, data_offset, label
        self.shape, self.dtype, self.fortran_order = shape, dtype, fortran_order
        self._whole = None

    def take(self, axis, start, stop):
        if axis != 0 or self.fortran_order and len(self.shape) > 1:
            return self.whole()[(slice(None),) * axis + (slice(start, stop),)]
        row_items = math.prod(self.shape[1:])
        count = (stop - start) * row_items
        return self._map(self.data_offset + start * row_items * self.dtype.itemsize, count,
                         (stop - start,) + self.shape[1:])

    def whole(self):
        if self._whole is None:
            order = "F" if self.fortran_order else "C"
            flat = self._map(self.data_offset, math.prod(self.shape), (math.prod(self.shape),))
            self._whole = flat.reshape(self.shape, order=order)
        return self._whole

    def _map(self, begin, count, shape):
        if count == 0 or self.dtype.itemsize == 0:
            return np.empty(shape, self.dtype)
        # The mapping lives as long as the array does (the array holds the
        # buffer), so dropping a chunk unmaps it.
        start = begin - begin % mmap.ALLOCATIONGRANULARITY
        mapping = mmap.mmap(self.file.fileno(), begin - start + count * self.dtype.itemsize,
                            access=mmap.ACCESS_READ, offset=start)
        return np.frombuffer(mapping, self.dtype, count, begin - start).reshape(shape)


class StreamedNpy:
    """A compressed .npz member, decompressed in order, one chunk at a time,
    into one reused buffer (chunks must be asked for in order)."""

    def __init__(self, stream, shape, dtype, fortran_order, label, load_whole, where=None):
        self.stream, self.label, self._load_whole = stream, label, load_whole
        self.where = where or "the .npz member"     # for messages
        self.shape, self.dtype, self.fortran_order = shape, dtype, fortran_order
        self._position, self._buffer, self._whole = 0, None, None

    def take(self, axis, start, stop):
        if axis != 0 or self.fortran_order and len(self.shape) > 1 or self._whole is not None:
            return self.whole()[(slice(None),) * axis + (slice(start, stop),)]
        if start != self._position:
            raise RuntimeError(f"{self.label}: a compressed .npz member is read in order; "
                               f"asked for rows {start}:{stop} at row {self._position}")
        row_items = math.prod(self.shape[1:])
        count = (stop - start) * row_items
        if self._buffer is None or self._buffer.size < count:
            self._buffer = np.empty(count, self.dtype)
        chunk = self._buffer[:count]
        read_exactly(self.stream, memoryview(chunk.view(np.uint8)), self.label, self.where)
        self._position = stop
        return chunk.reshape((stop - start,) + self.shape[1:])

    def whole(self):
        if self._whole is None:
            self._whole = self._load_whole()
        return self._whole


def read_exactly(stream, view, label, where="the .npz member"):
    filled = 0
    try:
        while filled < len(view):
            n = stream.readinto(view[filled:])
            if not n:
                raise ValueError(f"{label}: {where} is truncated "
                                 f"(the member ended {len(view) - filled} bytes early)")
            filled += n
    except ZIP_ERRORS as exc:
        raise ValueError(f"{label}: {where} is corrupt ({_reason(exc)})") from None


# ---------------------------------------------------------------- opening

def open_operand(value, label, stack):
    """A source for ``value``: a path ("x.npy", "x.npz:key", "x.npz" holding
    one array) or any array crossent's functions take (as_array)."""
    if isinstance(value, (str, os.PathLike)):
        return _open_file(os.fspath(value), label, stack)
    from ._validate import as_array
    return InMemory(as_array(value, label), label)


def _split_spec(spec):
    """"path" or "path.npz:key" -> (path, key or None)."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, key = spec.rsplit(":", 1)
    return (path, key) if os.path.exists(path) else (spec, None)


def _open_file(spec, label, stack):
    path, key = _split_spec(spec)
    try:
        file = stack.enter_context(open(path, "rb"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{label}: no such file: {path}") from None
    except OSError as exc:
        raise OSError(f"{label}: cannot open {path}: {exc.strerror or exc}") from None
    if file.read(4) == b"PK\x03\x04":
        return _open_npz_member(file, path, key, label, stack)
    if key is not None:
        raise ValueError(f"{label}: {path} is not an .npz archive, so it has no array {key!r}")
    file.seek(0)
    size = os.fstat(file.fileno()).st_size
    shape, dtype, fortran_order, header_bytes = _read_npy_header(file, label, path)
    _check_size(label, path, shape, dtype, size - header_bytes)
    return MappedNpy(file, header_bytes, shape, dtype, fortran_order, label)


# The .npy header, checked field by field before any byte of data is read.
NPY_MAGIC = b"\x93NUMPY"
# Header length (bytes after the length field) a .npy may declare: NumPy's
# own bound (np.lib.format's max_header_size); a longer header is no
# numeric array's, and bounding it bounds the parse.
MAX_HEADER_BYTES = 10000
MAX_DIMS = 64                       # NumPy's NPY_MAXDIMS
MAX_BYTES = 2**63 - 1               # what NumPy can index (intp)
# Element types crossent computes with: real numbers of the sizes NumPy
# names, native or byte-swapped ('|' for one-byte types).
SUPPORTED_KINDS = {"f": (2, 4, 8), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "b": (1,)}
# What parsing a garbled header literal or dtype string may raise.
PARSE_ERRORS = (ValueError, TypeError, SyntaxError, OverflowError, MemoryError, RecursionError)


class NpyHeader(NamedTuple):
    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    length: int                     # bytes from the magic string to the data


def _read_npy_header(stream, label, where):
    """The checked header of the .npy at the stream's position; anything that
    is not a .npy of real numbers raises one line naming ``where`` and the
    bad field."""
    def refuse(what, error=ValueError):
        raise error(f"{label}: {where}: {what}")

    preamble = stream.read(len(NPY_MAGIC) + 2)
    if len(preamble) < len(NPY_MAGIC) + 2 or preamble[:len(NPY_MAGIC)] != NPY_MAGIC:
        raise ValueError(f"{label}: {where} is not a .npy file (no NumPy magic string)")
    version = (preamble[-2], preamble[-1])
    if version not in ((1, 0), (2, 0), (3, 0)):
        refuse(f"unsupported .npy format version {version[0]}.{version[1]} "
               f"(expected 1.0, 2.0 or 3.0)")
    length_field = stream.read(2 if version == (1, 0) else 4)
    if len(length_field) != (2 if version == (1, 0) else 4):
        refuse("is truncated inside the .npy header")
    header_length = int.from_bytes(length_field, "little")
    if not 0 < header_length <= MAX_HEADER_BYTES:
        refuse(f"corrupt .npy header: its length field says {header_length} bytes "
               f"(expected 1 to {MAX_HEADER_BYTES})")
    text = stream.read(header_length)
    if len(text) != header_length:
        refuse(f"is truncated inside the .npy header ({len(text)} of its "
               f"{header_length} bytes present)")
    header = _parse_header_text(text, version, refuse)
    dtype = _header_dtype(header["descr"], refuse)
    shape = _header_shape(header["shape"], dtype, refuse)
    if not isinstance(header["fortran_order"], bool):
        refuse(f"corrupt .npy header: 'fortran_order' is {header['fortran_order']!r} "
               f"(expected True or False)")
    return NpyHeader(shape, dtype, header["fortran_order"],
                     len(preamble) + len(length_field) + header_length)


def _parse_header_text(text, version, refuse):
    """The header's dictionary literal, parsed without evaluating any code."""
    try:
        # Versions 1 and 2 are latin-1, 3 is utf-8 (for field names, which a
        # numeric array does not have).
        source = text.decode("utf-8" if version == (3, 0) else "latin-1")
        header = ast.literal_eval(source)
    except PARSE_ERRORS as exc:
        # literal_eval's message on code shows the node's address: not repeatable
        reason = ("it holds code or names" if str(exc).startswith("malformed node")
                  else " ".join(str(exc).split())[:80] or type(exc).__name__)
        refuse(f"corrupt .npy header (not a Python literal: {reason})")
    keys = ("descr", "fortran_order", "shape")
    if not isinstance(header, dict) or sorted(header) != list(keys):
        given = sorted(map(repr, header)) if isinstance(header, dict) else type(header).__name__
        refuse(f"corrupt .npy header: expected a dict with the keys 'descr', 'fortran_order' "
               f"and 'shape', got {given}")
    return header


def _header_dtype(descr, refuse):
    if not isinstance(descr, str):
        # A list describes a structured record type.
        refuse(f"holds a structured dtype ('descr' {_clip(descr)}); crossent reads arrays of "
               f"real numbers (floating, integer or bool)", TypeError)
    try:
        dtype = np.dtype(descr)
    except PARSE_ERRORS as exc:
        refuse(f"corrupt .npy header: 'descr' {_clip(descr)} is not a dtype "
               f"({' '.join(str(exc).split())[:80]})")
    if (dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject
            or dtype.itemsize not in SUPPORTED_KINDS.get(dtype.kind, ())):
        refuse(f"holds dtype {dtype} ('descr' {_clip(descr)}); crossent reads arrays of "
               f"real numbers (float16/32/64, integer or bool)", TypeError)
    return dtype


def _header_shape(shape, dtype, refuse):
    if not isinstance(shape, tuple):
        refuse(f"corrupt .npy header: 'shape' is {_clip(shape)} (expected a tuple of ints)")
    if len(shape) > MAX_DIMS:
        refuse(f"corrupt .npy header: 'shape' has {len(shape)} dimensions "
               f"(at most {MAX_DIMS})")
    for axis, n in enumerate(shape):
        # bool is an int to Python, never a length to NumPy's writer
        if type(n) is not int:
            refuse(f"corrupt .npy header: 'shape' {_clip(shape)} has {n!r} at axis {axis} "
                   f"(expected a non-negative int)")
        if n < 0:
            refuse(f"corrupt .npy header: 'shape' {_clip(shape)} has the negative dimension "
                   f"{n} at axis {axis}")
    # NumPy refuses a shape whose non-zero lengths overflow, even when another is 0.
    if math.prod(max(n, 1) for n in shape) * dtype.itemsize > MAX_BYTES:
        refuse(f"corrupt .npy header: 'shape' {_clip(shape)} of {dtype} overflows "
               f"(more than {MAX_BYTES} bytes)")
    return shape


def _clip(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_size(label, where, shape, dtype, available):
    needed = math.prod(shape) * dtype.itemsize
    if available < needed:
        raise ValueError(f"{label}: {where} is truncated: its header promises {dtype} of shape "
                         f"{shape} ({needed} bytes) but only {available} bytes follow")


# Errors zipfile and its decompressors raise on corrupt bytes.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error,
              NotImplementedError, RuntimeError, UnicodeDecodeError, OverflowError)
# Deflate expands its input at most ~1032 times (a 258-byte match per 2 bits),
# so a member's declared size beyond that is a lie, and memory spent on
# a member is bounded by the archive's size.
MAX_DEFLATE_RATIO = 1032
MSDOS_DIRECTORY = 0x10              # the directory bit of a zip entry's DOS attributes


def _open_npz_member(file, path, key, label, stack):
    try:
        archive = stack.enter_context(zipfile.ZipFile(file))
        names = archive.namelist()
    except ZIP_ERRORS + (ValueError,) as exc:
        raise ValueError(f"{label}: {path} is not a valid .npz archive ({_reason(exc)})") from None
    keys = [name[:-4] for name in names if name.endswith(".npy")]
    if key is None:
        if len(keys) != 1:
            raise ValueError(f"{label}: {path} holds {len(keys)} arrays ({', '.join(keys)}); "
                             f"name one as {path}:KEY")
        key = keys[0]
    if key not in keys:
        raise ValueError(f"{label}: {path} has no array {key!r} (it holds: {', '.join(keys)})")
    info = archive.getinfo(key + ".npy")
    where = f"{path}:{key}"
    archive_size = os.fstat(file.fileno()).st_size
    _check_member(info, archive_size, label, where)
    if info.compress_type == zipfile.ZIP_STORED:
        member_start = _stored_member_offset(file, info, label, where)
        file.seek(member_start)
        shape, dtype, fortran_order, header_bytes = _read_npy_header(file, label, where)
        file_end = archive_size - member_start
        _check_size(label, where, shape, dtype, min(info.file_size, file_end) - header_bytes)
        return MappedNpy(file, member_start + header_bytes, shape, dtype, fortran_order, label)
    try:
        stream = stack.enter_context(archive.open(info))
        shape, dtype, fortran_order, header_bytes = _read_npy_header(stream, label, where)
    except ZIP_ERRORS as exc:
        raise ValueError(f"{label}: cannot read {where} ({_reason(exc)})") from None
    _check_size(label, where, shape, dtype, info.file_size - header_bytes)

    def load_whole():
        try:
            with archive.open(info) as member:
                _read_npy_header(member, label, where)
                data = np.empty(math.prod(shape), dtype)
                read_exactly(member, memoryview(data.view(np.uint8)), label, where)
        except ZIP_ERRORS as exc:
            raise ValueError(f"{label}: cannot read {where} ({_reason(exc)})") from None
        return data.reshape(shape, order="F" if fortran_order else "C")

    return StreamedNpy(stream, shape, dtype, fortran_order, label, load_whole, where)


def _check_member(info, archive_size, label, where):
    """A member crossent reads: a regular file, not encrypted, stored or
    deflated, whose sizes in the zip directory are possible for the archive
    -- all known before a byte of it is decompressed."""
    # The file type in the Unix mode (0 when the writer gave none, as
    # np.savez does: its members are 0o600).
    mode = info.external_attr >> 16
    directory = info.is_dir() or stat.S_ISDIR(mode) or info.external_attr & MSDOS_DIRECTORY
    if directory or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        kind = "a directory" if directory else (
            "a symbolic link" if stat.S_ISLNK(mode) else f"not a regular file (mode {mode:#o})")
        raise ValueError(f"{label}: {where} is {kind} in the archive, not an array")
    if info.flag_bits & 0x1:
        raise ValueError(f"{label}: {where} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{label}: {where} uses zip compression method {info.compress_type}; "
                         f"crossent reads stored or deflated members (np.savez, "
                         f"np.savez_compressed)")
    if info.header_offset < 0:
        # zipfile moves offsets by where the directory is found against where
        # the end record says it is: a lying end record moves them below 0
        raise ValueError(f"{label}: {where}: corrupt zip directory: the member would start at "
                         f"offset {info.header_offset}, before the file's start")
    if info.header_offset + info.compress_size > archive_size:
        raise ValueError(f"{label}: {where} is truncated: the zip directory places "
                         f"{info.compress_size} bytes at offset {info.header_offset} of a "
                         f"{archive_size}-byte file")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise ValueError(f"{label}: {where}: corrupt zip directory: a stored member of "
                         f"{info.compress_size} bytes said to expand to {info.file_size}")
    if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024:
        raise ValueError(f"{label}: {where}: corrupt zip directory: {info.compress_size} "
                         f"compressed bytes said to expand to {info.file_size}, more than "
                         f"deflate can give")


def _reason(exc):
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def _stored_member_offset(file, info, label, where):
    """Byte offset of an uncompressed zip member's data: after its local header
    (30 bytes, then the name and the extra field, whose lengths it gives)."""
    file.seek(info.header_offset)
    local = file.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"{label}: {where}: corrupt zip local header at offset "
                         f"{info.header_offset}")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_length + extra_length
