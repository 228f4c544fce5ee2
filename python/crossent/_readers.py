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
"""
import math
import mmap
import os
import struct
import zipfile
import zlib

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

    def __init__(self, stream, shape, dtype, fortran_order, label, load_whole):
        self.stream, self.label, self._load_whole = stream, label, load_whole
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
        read_exactly(self.stream, memoryview(chunk.view(np.uint8)), self.label)
        self._position = stop
        return chunk.reshape((stop - start,) + self.shape[1:])

    def whole(self):
        if self._whole is None:
            self._whole = self._load_whole()
        return self._whole


def read_exactly(stream, view, label):
    filled = 0
    try:
        while filled < len(view):
            n = stream.readinto(view[filled:])
            if not n:
                raise ValueError(f"{label}: the .npz member is truncated "
                                 f"(it ended {len(view) - filled} bytes early)")
            filled += n
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValueError(f"{label}: the .npz member is corrupt ({exc})") from None


# ---------------------------------------------------------------- opening

def open_operand(value, label, stack):
    """A source for ``value``: a path ("x.npy", "x.npz:key", "x.npz" holding
    one array) or anything ``np.asarray`` takes."""
    if isinstance(value, (str, os.PathLike)):
        return _open_file(os.fspath(value), label, stack)
    return InMemory(np.asarray(value), label)


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


def _read_npy_header(stream, label, where):
    """(shape, dtype, fortran_order, header length in bytes) of the .npy at the
    stream's position; one clear error for anything that is not a .npy."""
    fmt = np.lib.format
    start = stream.tell()
    try:
        version = fmt.read_magic(stream)
    except ValueError:
        raise ValueError(f"{label}: {where} is not a .npy file (no NumPy magic string)") from None
    try:
        # Versions 2.0 and 3.0 share the header layout (3.0 only allows utf-8
        # field names, which a numeric array does not have).
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    except Exception as exc:  # noqa: BLE001 -- numpy's parser raises many kinds on garbage
        raise ValueError(f"{label}: {where} has a corrupt .npy header "
                         f"({type(exc).__name__}: {exc})") from None
    if dtype.hasobject or dtype.fields is not None:
        raise TypeError(f"{label}: {where} holds dtype {dtype}; crossent reads arrays of "
                        f"real numbers (floating, integer or bool)")
    return shape, dtype, fortran_order, stream.tell() - start


def _check_size(label, where, shape, dtype, available):
    needed = math.prod(shape) * dtype.itemsize
    if available < needed:
        raise ValueError(f"{label}: {where} is truncated: its header promises {dtype} of shape "
                         f"{shape} ({needed} bytes) but only {available} bytes follow")


def _open_npz_member(file, path, key, label, stack):
    try:
        archive = stack.enter_context(zipfile.ZipFile(file))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{label}: {path} is not a valid .npz archive ({exc})") from None
    keys = [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
    if key is None:
        if len(keys) != 1:
            raise ValueError(f"{label}: {path} holds {len(keys)} arrays ({', '.join(keys)}); "
                             f"name one as {path}:KEY")
        key = keys[0]
    if key not in keys:
        raise ValueError(f"{label}: {path} has no array {key!r} (it holds: {', '.join(keys)})")
    info = archive.getinfo(key + ".npy")
    where = f"{path}:{key}"
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
        member_start = _stored_member_offset(file, info, label, where)
        file.seek(member_start)
        shape, dtype, fortran_order, header_bytes = _read_npy_header(file, label, where)
        file_end = os.fstat(file.fileno()).st_size - member_start
        _check_size(label, where, shape, dtype, min(info.file_size, file_end) - header_bytes)
        return MappedNpy(file, member_start + header_bytes, shape, dtype, fortran_order, label)
    try:
        stream = stack.enter_context(archive.open(info))
        shape, dtype, fortran_order, header_bytes = _read_npy_header(stream, label, where)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{label}: cannot read {where} ({exc})") from None
    _check_size(label, where, shape, dtype, info.file_size - header_bytes)

    def load_whole():
        with archive.open(info) as member:
            _read_npy_header(member, label, where)
            data = np.empty(math.prod(shape), dtype)
            read_exactly(member, memoryview(data.view(np.uint8)), label)
        return data.reshape(shape, order="F" if fortran_order else "C")

    return StreamedNpy(stream, shape, dtype, fortran_order, label, load_whole)


def _stored_member_offset(file, info, label, where):
    """Byte offset of an uncompressed zip member's data: after its local header
    (30 bytes, then the name and the extra field, whose lengths it gives)."""
    file.seek(info.header_offset)
    local = file.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise ValueError(f"{label}: {where}: corrupt zip local header")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_length + extra_length
