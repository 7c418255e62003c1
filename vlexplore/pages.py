"""A direct reader of the float32 vector columns :mod:`vlexplore.cache` writes, page by page.

Arrow stores a ``fixed_size_list<float32>[d]`` column as a Parquet list: every float carries a
repetition and a definition level, and pyarrow decodes them one by one (~0.3 s for 70,000 × 2 × 512
floats, most of a cached re-open). The shards are written uncompressed with plain encoding, so the
floats of each data page lie in the file as they are, behind two short runs of levels. This module
checks the page header and the levels (each distinct level run is decoded once per process and then
recognised by its bytes) and copies the floats straight into the caller's array.

Anything it does not expect (compression, a dictionary, data page v2, a null vector, a page that does
not start on a vector, a short read, an unknown header field) raises :class:`Unsupported`, and the
caller reads that column chunk with pyarrow instead — which also reports real damage as it always did.
"""

from __future__ import annotations

from io import RawIOBase

import numpy as np

#: Parquet's Thrift enums: page type DATA_PAGE, encodings PLAIN and RLE.
_DATA_PAGE, _PLAIN, _RLE = 0, 0, 3
_MAX_VERIFIED = 256
_HEAD = 4096  # bytes read for a page header and its levels (more when the levels are longer)
_verified: set[tuple[int, int, int, bytes]] = set()  # (max level, d or 0, count, level bytes) seen valid


class Unsupported(Exception):
    """This column chunk is not one the direct reader handles (read it with pyarrow)."""


def leaf_of(parquet_schema, arrow_type, column: str) -> int | None:
    """The Parquet leaf index of vector column ``column``, or ``None`` when the direct reader cannot read it.

    It can when the Arrow type is ``fixed_size_list<float32>`` and the column has exactly one FLOAT leaf
    with one repetition level.
    """
    import pyarrow as pa

    if not (pa.types.is_fixed_size_list(arrow_type) and arrow_type.value_type == pa.float32()):
        return None
    leaves = [i for i in range(len(parquet_schema)) if parquet_schema.column(i).path.split(".")[0] == column]
    if len(leaves) != 1:
        return None
    leaf = parquet_schema.column(leaves[0])
    if leaf.physical_type != "FLOAT" or leaf.max_repetition_level != 1 or leaf.max_definition_level < 1:
        return None
    return leaves[0]


def read_chunk(fh: RawIOBase, chunk, max_def: int, d: int, dest: np.ndarray) -> None:
    """Read the floats of one column chunk (a row group of a vector column) straight into ``dest``.

    Only page headers and levels pass through Python; the floats go from the file into ``dest``.

    Args:
        fh: the shard, opened unbuffered for binary reading.
        chunk: its ``pyarrow`` column chunk metadata.
        max_def: the leaf's maximum definition level (every float must be present).
        d: the vector length.
        dest: float32 ``(rows * d,)``, C-contiguous; filled (or partly, when this raises).

    Raises:
        Unsupported: the chunk is not plain, uncompressed, complete vectors (read it with pyarrow).
        OSError: reading the file failed.
    """
    size = chunk.total_compressed_size
    if (
        chunk.has_dictionary_page
        or chunk.compression != "UNCOMPRESSED"
        or chunk.num_values != dest.size
        or size != chunk.total_uncompressed_size
    ):
        raise Unsupported("not a plain uncompressed chunk")
    if dest.dtype != np.float32 or not dest.flags.c_contiguous:
        raise Unsupported("destination")
    out = dest.data.cast("B")
    pos, stop, filled = chunk.data_page_offset, chunk.data_page_offset + size, 0
    while filled < dest.size:
        head = _read_at(fh, pos, min(_HEAD, stop - pos))
        header, i = _struct(head, 0, len(head), nested=5)
        page = header.get(5)
        if header.get(1) != _DATA_PAGE or not isinstance(page, dict) or header.get(2) != header.get(3):
            raise Unsupported("not an uncompressed v1 data page")
        end = i + _int(header, 3)
        n = _int(page, 1)
        if pos + end > stop or end < i or n <= 0 or n % d or filled + n > dest.size:
            raise Unsupported("page sizes")
        if page.get(2) != _PLAIN or page.get(3) != _RLE or page.get(4) != _RLE:
            raise Unsupported("page encodings")
        head, i = _check_levels(fh, pos, head, i, end, n, 1, d)  # repetition: 0 then d - 1 ones, per vector
        head, i = _check_levels(fh, pos, head, i, end, n, max_def, 0)  # definition: all present
        if end - i != 4 * n:
            raise Unsupported("page values size")
        _read_into(fh, pos + i, out[4 * filled : 4 * (filled + n)])
        filled += n
        pos += end
    if pos != stop:
        raise Unsupported("trailing bytes in the chunk")


def _int(fields: dict, key: int) -> int:
    value = fields.get(key)
    return value if isinstance(value, int) else -1


def _read_at(fh: RawIOBase, pos: int, n: int) -> bytes:
    fh.seek(pos)
    data = fh.read(n)
    if len(data) != n:
        raise Unsupported("short read")
    return data


def _read_into(fh: RawIOBase, pos: int, out: memoryview) -> None:
    fh.seek(pos)
    got = 0
    while got < len(out):
        n = fh.readinto(out[got:])
        if not n:
            raise Unsupported("short read")
        got += n


def _check_levels(
    fh: RawIOBase, pos: int, head: bytes, i: int, end: int, n: int, level: int, d: int
) -> tuple[bytes, int]:
    """Check the length-prefixed level run at ``head[i:]`` (page at ``pos``; read on when ``head`` is short).

    Returns ``head`` (maybe longer) and where the run ends.
    """
    if i + 4 > end:
        raise Unsupported("levels size")
    if i + 4 > len(head):
        head += _read_at(fh, pos + len(head), i + 4 - len(head))
    length = int.from_bytes(head[i : i + 4], "little")
    start, stop = i + 4, i + 4 + length
    if stop > end:
        raise Unsupported("levels size")
    if stop > len(head):
        head += _read_at(fh, pos + len(head), stop - len(head))
    key = (level, d, n, head[start:stop])
    if key in _verified:
        return head, stop
    levels = _decode_levels(key[3], level.bit_length(), n)
    if d:  # repetition levels of fixed-size lists
        rows = levels.reshape(-1, d)
        ok = not rows[:, 0].any() and bool((rows[:, 1:] == 1).all())
    else:
        ok = bool((levels == level).all())
    if not ok:
        raise Unsupported("levels")
    if len(_verified) >= _MAX_VERIFIED:
        _verified.clear()
    _verified.add(key)
    return head, stop


def _decode_levels(raw: bytes, width: int, n: int) -> np.ndarray:
    """Parquet's RLE / bit-packed hybrid encoding → ``n`` levels."""
    out = np.empty(n, dtype=np.int64)
    nbytes = (width + 7) // 8
    weights = 1 << np.arange(width)
    i = pos = 0
    while pos < n:
        header, i = _varint(raw, i, len(raw))
        if header & 1:  # bit-packed groups of 8 values, the last one may be padded
            size = (header >> 1) * width
            if not size or i + size > len(raw):
                raise Unsupported("levels")
            bits = np.unpackbits(np.frombuffer(raw, np.uint8, size, i), bitorder="little")
            values = bits.reshape(-1, width) @ weights
            take = min(len(values), n - pos)
            out[pos : pos + take] = values[:take]
        else:
            size, take = nbytes, header >> 1
            if not take or take > n - pos or i + size > len(raw):
                raise Unsupported("levels")
            out[pos : pos + take] = int.from_bytes(raw[i : i + size], "little")
        pos += take
        i += size
    if i != len(raw):
        raise Unsupported("levels")
    return out


def _varint(buf, i: int, end: int) -> tuple[int, int]:
    out = shift = 0
    while i < end and shift < 64:
        byte = buf[i]
        i += 1
        out |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return out, i
        shift += 7
    raise Unsupported("varint")


def _struct(buf, i: int, end: int, nested: int = 0, depth: int = 0) -> tuple[dict[int, object], int]:
    """A Thrift compact-protocol struct: its i32 fields (and struct field ``nested``, one level); others skipped."""
    fields: dict[int, object] = {}
    field = 0
    while True:
        if i >= end:
            raise Unsupported("page header")
        byte = buf[i]
        i += 1
        if byte == 0:
            return fields, i
        kind, delta = byte & 0x0F, byte >> 4
        if not delta:
            raise Unsupported("page header")  # long-form field ids: not written by parquet-cpp
        field += delta
        if kind == 5:
            raw, i = _varint(buf, i, end)
            fields[field] = (raw >> 1) ^ -(raw & 1)
        elif kind == 12 and field == nested:
            fields[field], i = _struct(buf, i, end, 0, depth + 1)
        else:
            i = _skip(buf, i, end, kind, depth + 1)


def _skip(buf, i: int, end: int, kind: int, depth: int) -> int:
    """Skip one compact-protocol value of type ``kind``."""
    if depth > 8:
        raise Unsupported("page header")
    if kind in (1, 2):  # a bool field: the value is in the type
        return i
    if kind == 3:
        return i + 1
    if kind in (4, 5, 6):
        return _varint(buf, i, end)[1]
    if kind == 7:
        return i + 8
    if kind == 8:
        n, i = _varint(buf, i, end)
        return i + n
    if kind in (9, 10) and i < end:
        n, elem = buf[i] >> 4, buf[i] & 0x0F
        i += 1
        if n == 15:
            n, i = _varint(buf, i, end)
        for _ in range(n):
            i = i + 1 if elem in (1, 2) else _skip(buf, i, end, elem, depth + 1)
        return i
    if kind == 12:
        return _struct(buf, i, end, 0, depth)[1]
    raise Unsupported("page header")
