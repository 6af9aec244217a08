"""Read a TensorFlow checkpoint (a "tensor bundle") with numpy alone.

A checkpoint ``<prefix>.index`` + ``<prefix>.data-00000-of-00001`` is:

* ``.index``: a LevelDB-format table (a 48-byte footer ending in the magic
  number ``0xdb4775248b80fb57``, an index block pointing at data blocks, each
  block followed by a 1-byte compression type and a masked CRC-32C). Keys are
  the variable names, prefix-compressed within a block; the empty key holds a
  ``BundleHeaderProto``, every other value a ``BundleEntryProto`` (dtype,
  shape, shard, offset, size, masked CRC-32C of the tensor's bytes).
* ``.data-…``: the tensors' raw little-endian bytes, one after the other.

Only what TensorFlow writes for ordinary (unpartitioned, numeric, single
shard, uncompressed) checkpoints is read; anything else is refused with a
:class:`BundleError`, never guessed. Every block's and every tensor's CRC-32C
is checked.
"""

from __future__ import annotations

import numpy as np

from progrock.errors import ModelError

MAGIC = 0xDB4775248B80FB57
"""LevelDB table magic number, the last 8 bytes of an ``.index`` file."""

FOOTER_BYTES = 48
BLOCK_TRAILER_BYTES = 5

DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),   # DT_FLOAT
    2: np.dtype("<f8"),   # DT_DOUBLE
    3: np.dtype("<i4"),   # DT_INT32
    4: np.dtype("u1"),    # DT_UINT8
    6: np.dtype("i1"),    # DT_INT8
    9: np.dtype("<i8"),   # DT_INT64
    10: np.dtype("?"),    # DT_BOOL
    19: np.dtype("<f2"),  # DT_HALF
}
"""TensorFlow ``DataType`` enum values read, and their numpy dtypes."""


class BundleError(ModelError):
    """A checkpoint is malformed, damaged or of a kind this reader does not read."""


# ---------------------------------------------------------------------------
# CRC-32C (Castagnoli), vectorised over chunks


_POLY = 0x82F63B78  # CRC-32C, reflected
_CHUNK = 1024  # bytes per chunk of the vectorised CRC


def _byte_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


_TABLE = _byte_table()
_TABLE_LIST = _TABLE.tolist()
_SMALL = 8 * _CHUNK  # up to this many bytes, one plain loop is faster


def _zeros_operator(n_bytes: int) -> list[int]:
    """The CRC register's linear map for ``n_bytes`` zero bytes: images of the 32 unit vectors."""
    def step(op: list[int], other: list[int]) -> list[int]:  # op after other
        return [_apply(op, v) for v in other]

    one = [int(_TABLE[(1 << i) & 0xFF]) ^ ((1 << i) >> 8) for i in range(32)]
    result = [1 << i for i in range(32)]
    while n_bytes:
        if n_bytes & 1:
            result = step(one, result)
        one = step(one, one)
        n_bytes >>= 1
    return result


def _apply(op: list[int], v: int) -> int:
    out = 0
    i = 0
    while v:
        if v & 1:
            out ^= op[i]
        v >>= 1
        i += 1
    return out


def _byte_tables(op: list[int]) -> np.ndarray:
    # op applied to a 32-bit value = XOR of four tables indexed by its bytes
    tables = np.zeros((4, 256), dtype=np.uint32)
    for k in range(4):
        for b in range(256):
            tables[k, b] = _apply(op, b << (8 * k))
    return tables


_SHIFT_CHUNK = _byte_tables(_zeros_operator(_CHUNK))


def crc32c(data: bytes | memoryview | np.ndarray) -> int:
    """CRC-32C (Castagnoli) of ``data``, as ``crc32c::Value`` in TensorFlow and LevelDB.

    The bytes are cut into 1 KiB chunks whose CRC registers are advanced
    together (one vectorised table step per byte position), then combined in
    order with the linear map of 1 KiB of zero bytes.

    Returns
    -------
    int
        The checksum, 0 <= crc < 2**32.
    """
    buf = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    n = buf.size
    if n <= _SMALL:
        table = _TABLE_LIST
        state = 0xFFFFFFFF
        for b in buf.tolist():
            state = table[(state ^ b) & 0xFF] ^ (state >> 8)
        return state ^ 0xFFFFFFFF
    n_chunks = -(-n // _CHUNK)
    # Leading zeros leave a zero register unchanged: pad the first chunk in front.
    padded = np.zeros(n_chunks * _CHUNK, dtype=np.uint8)
    padded[padded.size - n:] = buf
    columns = np.ascontiguousarray(padded.reshape(n_chunks, _CHUNK).T, dtype=np.uint32)
    reg = np.zeros(n_chunks, dtype=np.uint32)
    low = np.empty(n_chunks, dtype=np.uint32)
    for col in columns:
        np.bitwise_xor(reg, col, out=low)
        np.bitwise_and(low, 0xFF, out=low)
        np.right_shift(reg, 8, out=reg)
        np.bitwise_xor(reg, _TABLE[low], out=reg)
    state = 0
    t0, t1, t2, t3 = (t.tolist() for t in _SHIFT_CHUNK)
    for r in reg.tolist():
        state = (t0[state & 0xFF] ^ t1[(state >> 8) & 0xFF] ^ t2[(state >> 16) & 0xFF]
                 ^ t3[state >> 24] ^ r)
    # The standard CRC starts from 0xFFFFFFFF and inverts at the end.
    state ^= _apply(_zeros_operator(n), 0xFFFFFFFF)
    return state ^ 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Undo LevelDB's ``crc32c::Mask`` (rotate right by 15 bits after subtracting a constant)."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---------------------------------------------------------------------------
# Protocol-buffer wire format and LevelDB blocks


def _varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BundleError(f"checkpoint index: truncated or overlong varint in {what}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(msg: bytes, what: str) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protocol-buffer message, in order."""
    out = []
    pos = 0
    while pos < len(msg):
        key, pos = _varint(msg, pos, what)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(msg, pos, what)
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if pos + width > len(msg):
                raise BundleError(f"checkpoint index: truncated {what}")
            value = int.from_bytes(msg[pos:pos + width], "little")
            pos += width
        elif wire == 2:
            size, pos = _varint(msg, pos, what)
            if pos + size > len(msg):
                raise BundleError(f"checkpoint index: truncated {what}")
            value = msg[pos:pos + size]
            pos += size
        else:
            raise BundleError(f"checkpoint index: unsupported wire type {wire} in {what}")
        out.append((number, value))
    return out


def _block(index: bytes, handle: bytes, what: str) -> bytes:
    """The contents of the block a ``BlockHandle`` points at, its CRC checked."""
    offset, pos = _varint(handle, 0, what)
    size, _ = _varint(handle, pos, what)
    end = offset + size
    if end + BLOCK_TRAILER_BYTES > len(index):
        raise BundleError(f"checkpoint index: {what} lies beyond the end of the file (truncated?)")
    contents = index[offset:end]
    kind = index[end]
    if kind != 0:
        raise BundleError(f"checkpoint index: {what} is compressed (type {kind}); only "
                          "uncompressed tables are read")
    stored = int.from_bytes(index[end + 1:end + 5], "little")
    if unmask(stored) != crc32c(index[offset:end + 1]):
        raise BundleError(f"checkpoint index: CRC-32C mismatch in {what} (damaged file)")
    return contents


def _entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of a LevelDB block (keys prefix-compressed)."""
    if len(block) < 4:
        raise BundleError(f"checkpoint index: {what} is too short")
    n_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 * (n_restarts + 1)
    if limit < 0:
        raise BundleError(f"checkpoint index: {what} has a bad restart count")
    out = []
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = _varint(block, pos, what)
        unshared, pos = _varint(block, pos, what)
        size, pos = _varint(block, pos, what)
        if shared > len(key) or pos + unshared + size > limit:
            raise BundleError(f"checkpoint index: corrupt entry in {what}")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + size]))
        pos += size
    return out


# ---------------------------------------------------------------------------
# The bundle


def _check_header(value: bytes) -> None:
    header = dict(_fields(value, "the bundle header"))
    if header.get(1, 1) != 1:
        raise BundleError(f"checkpoint is split into {header[1]} shards; only one is read")
    if header.get(2, 0) != 0:
        raise BundleError("checkpoint is big-endian; only little-endian ones are read")


def _tensor(name: str, value: bytes, data: bytes) -> np.ndarray:
    fields = _fields(value, f"the entry of {name!r}")
    entry: dict[int, int | bytes] = {}
    dims: list[int] = []
    for number, v in fields:
        if number == 2:
            for n2, dim in _fields(v, f"the shape of {name!r}"):
                if n2 == 2:
                    dims.append(int(dict(_fields(dim, f"the shape of {name!r}")).get(1, 0)))
                elif n2 == 3 and dim:
                    raise BundleError(f"checkpoint: {name!r} has an unknown rank")
        elif number == 7:
            raise BundleError(f"checkpoint: {name!r} is partitioned into slices; not read")
        else:
            entry[number] = v
    dtype = DTYPES.get(int(entry.get(1, 0)))
    if dtype is None:
        raise BundleError(f"checkpoint: {name!r} has TensorFlow dtype {entry.get(1, 0)}, not read")
    if entry.get(3, 0) != 0:
        raise BundleError(f"checkpoint: {name!r} is in shard {entry[3]}; only shard 0 is read")
    offset, size = int(entry.get(4, 0)), int(entry.get(5, 0))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise BundleError(f"checkpoint: {name!r} holds {size} bytes, its shape {dims} needs {expected}")
    if offset + size > len(data):
        raise BundleError(f"checkpoint data file ends before {name!r} (truncated?)")
    raw = data[offset:offset + size]
    if 6 in entry and unmask(int(entry[6])) != crc32c(raw):
        raise BundleError(f"checkpoint: CRC-32C mismatch in {name!r} (damaged data file)")
    return np.frombuffer(raw, dtype=dtype).reshape(dims).copy()


def read_bundle(index: bytes, data: bytes) -> dict[str, np.ndarray]:
    """Every tensor of a single-shard TensorFlow checkpoint.

    Parameters
    ----------
    index : bytes
        The ``<prefix>.index`` file's bytes.
    data : bytes
        The ``<prefix>.data-00000-of-00001`` file's bytes.

    Returns
    -------
    dict of str to np.ndarray
        Variable name to array (native byte order, a copy), in the index's
        (sorted) order.

    Raises
    ------
    BundleError
        Not a LevelDB table, truncated, a checksum mismatch, more than one
        shard, partitioned or non-numeric variables, compressed blocks.
    """
    index, data = bytes(index), memoryview(data)
    if len(index) < FOOTER_BYTES:
        raise BundleError(f"checkpoint index is {len(index)} bytes: too short for a table footer")
    footer = index[-FOOTER_BYTES:]
    if int.from_bytes(footer[-8:], "little") != MAGIC:
        raise BundleError("checkpoint index does not end in the LevelDB table magic number")
    _, pos = _varint(footer, 0, "the footer")  # metaindex handle (unused)
    _, pos = _varint(footer, pos, "the footer")
    index_block = _block(index, footer[pos:40], "the index block")
    tensors: dict[str, np.ndarray] = {}
    header_seen = False
    for i, (_, handle) in enumerate(_entries(index_block, "the index block")):
        for key, value in _entries(_block(index, handle, f"data block {i}"), f"data block {i}"):
            if key == b"":
                _check_header(value)
                header_seen = True
                continue
            name = key.decode("utf-8", errors="replace")
            tensors[name] = _tensor(name, value, data)
    if not header_seen:
        raise BundleError("checkpoint index has no bundle header")
    return tensors


__all__ = ["BundleError", "MAGIC", "crc32c", "read_bundle", "unmask"]

