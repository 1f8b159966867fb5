"""MXNet `.params` files (the NDArray list format), read without MXNet.

Attentional Feature Fusion, https://arxiv.org/abs/2009.14082

The official networks were trained in MXNet/Gluon and saved with
`net.save_parameters`, which writes `mx.nd.save`'s list format
(`NDArray::Save` in MXNet's `src/ndarray/ndarray.cc`), all little-endian:

    uint64 0x112 (list magic), uint64 reserved, uint64 array count,
    each array:
        v2 / v3: uint32 0xF993FAC9 / 0xF993FACA, int32 storage type
                 (0 dense), int32 ndim, int64 dims
        v1:      uint32 0xF993FAC8, uint32 ndim, int64 dims
        legacy:  uint32 ndim (no magic), uint32 dims
        then int32 device type, int32 device id, int32 dtype flag and the
        raw data (C order),
    uint64 name count (0 or the array count), each: uint64 length, bytes.

The reader only parses bytes: nothing in the file is executed, every size
is checked against the bytes left before anything is allocated, and every
problem is a `ValueError` naming the file and the byte offset.
"""

import struct

import numpy as np

from keras_aff import _validation

__all__ = ["read_mxnet_params"]

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA  # NumPy shape semantics (MXNet >= 1.6)
# mshadow's type flags: the ones MXNet 1.x writes for parameters.
DTYPES = {
    0: np.dtype("float32"),
    1: np.dtype("float64"),
    2: np.dtype("float16"),
    3: np.dtype("uint8"),
    4: np.dtype("int32"),
    5: np.dtype("int8"),
    6: np.dtype("int64"),
}
STORAGE_TYPES = {0: "dense", 1: "row_sparse", 2: "csr"}
# A legacy array starts with its ndim instead of a magic; anything larger
# is not a plausible ndim, so it is reported as an unknown magic.
MAX_LEGACY_NDIM = 32


class _Reader:
    """Little-endian reads from `data` with bounds checks; every failure
    names the file and the byte offset."""

    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.offset = 0

    @property
    def left(self):
        return len(self.data) - self.offset

    def fail(self, reason, offset=None):
        offset = self.offset if offset is None else offset
        raise ValueError(
            f"Cannot read '{self.path}' as an MXNet `.params` file: "
            f"{reason} (at byte offset {offset}). "
            + _validation.received("path", self.path)
        )

    def take(self, size, what):
        if size > self.left:
            self.fail(
                f"the file is truncated: {what} needs {size} bytes, only "
                f"{self.left} are left"
            )
        start = self.offset
        self.offset += size
        return memoryview(self.data)[start : self.offset]

    def values(self, fmt, what):
        """A tuple of values in the `struct` format `fmt`."""
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))

    def value(self, fmt, what):
        """One value in the `struct` format `fmt`."""
        return self.values(fmt, what)[0]


def read_mxnet_params(path) -> dict:
    """Reads an MXNet `.params` file into NumPy arrays, without MXNet.

    Reads the NDArray list format that `net.save_parameters` and
    `mx.nd.save` write (MXNet 0.x to 1.9: the v3, v2, v1 and legacy array
    layouts). Supported dtypes: float32, float16, float64, uint8, int8,
    int32, int64. Sparse arrays, uninitialised (empty) arrays, an unknown
    magic or dtype flag, a truncated file and trailing bytes are errors.
    Nothing in the file is executed, and no array larger than the bytes
    left in the file is ever allocated.

    Args:
        path: str or path-like, the `.params` file.

    Returns:
        A dict from name to `numpy.ndarray` (native byte order, the file's
        dtype and shape), in file order. Gluon's `save_parameters` writes
        structural names (`features.0.weight`); a list saved without names
        (`mx.nd.save(f, [a, b])`) gives the keys "0", "1", ...

    Raises:
        ValueError: the file is not a valid `.params` file; the message
            names the file, what is wrong and the byte offset.
        TypeError: `path` is not a str or path-like.

    Example:

    >>> import struct
    >>> array = (struct.pack("<IiiqqiiI", 0xF993FAC9, 0, 2, 1, 2, 1, 0, 0)
    ...          + np.array([[1.5, -2.0]], "<f4").tobytes())
    >>> with open("tiny.params", "wb") as f:
    ...     _ = f.write(struct.pack("<QQQ", 0x112, 0, 1) + array
    ...                 + struct.pack("<QQ", 1, 9) + b"fc.weight")
    >>> keras_aff.interop.read_mxnet_params("tiny.params")
    {'fc.weight': array([[ 1.5, -2. ]], dtype=float32)}
    """
    path = _validation.check_existing_file("path", path)
    with open(path, "rb") as f:
        reader = _Reader(path, f.read())
    magic, _ = reader.values("QQ", "the header")
    if magic != LIST_MAGIC:
        reader.fail(
            f"the header magic is 0x{magic:X}, not 0x{LIST_MAGIC:X} (not an "
            "MXNet NDArray file)",
            offset=0,
        )
    count = reader.value("Q", "the array count")
    if count > reader.left // 4:  # every array takes at least 4 bytes
        reader.fail(
            f"the file declares {count} arrays but only {reader.left} bytes "
            "follow"
        )
    arrays = [_read_array(reader, i) for i in range(count)]
    names = _read_names(reader, count)
    if reader.left:
        reader.fail(f"{reader.left} unexpected bytes after the last name")
    return dict(zip(names, arrays))


def _read_array(reader, index):
    start = reader.offset
    magic = reader.value("I", f"the magic of array {index}")
    if magic in (V2_MAGIC, V3_MAGIC):
        storage = reader.value("i", f"the storage type of array {index}")
        if storage != 0:
            kind = STORAGE_TYPES.get(storage, f"unknown ({storage})")
            reader.fail(
                f"array {index} has {kind} storage; only dense arrays are "
                "supported",
                offset=start + 4,
            )
        shape = _read_shape(reader, index, "i", "q")
    elif magic == V1_MAGIC:
        shape = _read_shape(reader, index, "I", "q")
    elif magic <= MAX_LEGACY_NDIM:  # legacy: the magic is the ndim
        shape = reader.values(f"{magic}I", f"the shape of array {index}")
    else:
        reader.fail(
            f"array {index} starts with the unknown magic 0x{magic:08X} "
            f"(expected 0x{V2_MAGIC:08X}, 0x{V1_MAGIC:08X}, "
            f"0x{V3_MAGIC:08X} or a legacy ndim <= {MAX_LEGACY_NDIM})",
            offset=start,
        )
    if not shape and magic != V3_MAGIC:
        reader.fail(
            f"array {index} is empty (an uninitialised NDArray, ndim 0)",
            offset=start,
        )
    _device = reader.values("ii", f"the context of array {index}")
    flag_at = reader.offset
    flag = reader.value("i", f"the dtype flag of array {index}")
    if flag not in DTYPES:
        reader.fail(
            f"array {index} has the unsupported dtype flag {flag} (supported:"
            f" {', '.join(f'{k} {v}' for k, v in DTYPES.items())})",
            offset=flag_at,
        )
    dtype = DTYPES[flag]
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    raw = reader.take(size, f"the data of array {index} {shape} {dtype}")
    little = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    return little.astype(dtype).reshape(shape)


def _read_shape(reader, index, ndim_format, dim_format):
    at = reader.offset
    ndim = reader.value(ndim_format, f"the ndim of array {index}")
    if ndim < 0:
        reader.fail(
            f"array {index} declares ndim {ndim} (an unknown shape: an "
            "uninitialised NDArray)",
            offset=at,
        )
    if ndim * 8 > reader.left:
        reader.fail(
            f"array {index} declares ndim {ndim}, which the "
            f"{reader.left} bytes left cannot hold",
            offset=at,
        )
    shape = reader.values(f"{ndim}{dim_format}", f"the shape of array {index}")
    if any(d < 0 for d in shape):
        reader.fail(
            f"array {index} has an unknown or negative dimension in its "
            f"shape {shape}",
            offset=at,
        )
    return shape


def _read_names(reader, count):
    num_names = reader.value("Q", "the name count")
    if num_names == 0:
        return [str(i) for i in range(count)]
    if num_names != count:
        reader.fail(
            f"the file holds {count} arrays but {num_names} names",
            offset=reader.offset - 8,
        )
    names = []
    seen = set()
    for i in range(count):
        length = reader.value("Q", f"the length of name {i}")
        at = reader.offset
        raw = bytes(reader.take(length, f"name {i}"))
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            reader.fail(f"name {i} is not UTF-8: {raw[:40]!r}", offset=at)
        if name in seen:
            reader.fail(f"the name {name!r} appears twice", offset=at)
        seen.add(name)
        names.append(name)
    return names


def is_mxnet_params(path) -> bool:
    """Whether the file at `path` starts like an MXNet NDArray list file
    (the uint64 magic 0x112), whatever its extension.

    Example:

    >>> with open("w.params", "wb") as f:
    ...     _ = f.write((0x112).to_bytes(8, "little") + bytes(16))
    >>> is_mxnet_params("w.params"), is_mxnet_params("missing.params")
    (True, False)
    """
    if _validation.regular_file_problem(path):  # a FIFO would block
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except (OSError, TypeError):
        return False
    return len(head) == 8 and int.from_bytes(head, "little") == LIST_MAGIC
