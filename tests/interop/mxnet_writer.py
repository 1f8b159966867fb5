"""A writer of MXNet's NDArray list format, written from the layout in
MXNet's `src/ndarray/ndarray.cc` (`NDArray::Save`, `LegacyLoad`), to test
the reader on layouts and dtypes that no fixture holds.

`params_bytes` writes what `mx.nd.save` writes; each array can be written
in the v3, v2, v1 or legacy layout, and `ArraySpec` can override any field
(magic, storage type, ndim, shape, dtype flag, data) to make broken files.
"""

import dataclasses
import struct

import numpy as np

LIST_MAGIC = 0x112
MAGICS = {"v1": 0xF993FAC8, "v2": 0xF993FAC9, "v3": 0xF993FACA}
FLAGS = {
    "float32": 0,
    "float64": 1,
    "float16": 2,
    "uint8": 3,
    "int32": 4,
    "int8": 5,
    "int64": 6,
}


@dataclasses.dataclass
class ArraySpec:
    """One array to write; the fields left None follow from `array`."""

    array: np.ndarray
    layout: str = "v2"
    magic: object = None
    storage: int = 0
    ndim: object = None
    shape: object = None
    flag: object = None
    data: object = None
    device: tuple = (1, 0)


def array_bytes(spec):
    """One array as `NDArray::Save` (v2 / v3), the v1 save or the legacy
    save writes it."""
    array = np.asarray(spec.array)
    shape = tuple(array.shape) if spec.shape is None else tuple(spec.shape)
    ndim = len(shape) if spec.ndim is None else spec.ndim
    out = b""
    if spec.layout in ("v2", "v3"):
        magic = MAGICS[spec.layout] if spec.magic is None else spec.magic
        out += struct.pack("<Ii", magic, spec.storage)
        out += struct.pack("<i", ndim) + struct.pack(f"<{len(shape)}q", *shape)
    elif spec.layout == "v1":
        magic = MAGICS["v1"] if spec.magic is None else spec.magic
        out += struct.pack("<I", magic)
        out += struct.pack("<I", ndim) + struct.pack(f"<{len(shape)}q", *shape)
    else:  # legacy: the ndim stands where the magic is
        magic = ndim if spec.magic is None else spec.magic
        out += struct.pack("<I", magic)
        out += struct.pack(f"<{len(shape)}I", *shape)
    flag = FLAGS[array.dtype.name] if spec.flag is None else spec.flag
    out += struct.pack("<iii", *spec.device, flag)
    if spec.data is not None:
        return out + spec.data
    return out + array.astype(array.dtype.newbyteorder("<")).tobytes()


def params_bytes(arrays, layout="v2", names=None, header=LIST_MAGIC):
    """The bytes of a `.params` file holding `arrays`: a dict name ->
    array (or `ArraySpec`), or a list (saved without names). `names`
    overrides the name list."""
    if isinstance(arrays, dict):
        names = list(arrays) if names is None else names
        arrays = list(arrays.values())
    names = [] if names is None else names
    specs = [
        a if isinstance(a, ArraySpec) else ArraySpec(a, layout=layout)
        for a in arrays
    ]
    parts = [struct.pack("<QQQ", header, 0, len(specs))]
    parts += [array_bytes(s) for s in specs]
    parts.append(struct.pack("<Q", len(names)))
    for name in names:
        raw = name if isinstance(name, bytes) else name.encode("utf-8")
        parts += [struct.pack("<Q", len(raw)), raw]
    return b"".join(parts)


def write_params(path, arrays, **kwargs):
    """Writes `params_bytes(arrays, **kwargs)` to `path`; returns `path`."""
    with open(path, "wb") as f:
        f.write(params_bytes(arrays, **kwargs))
    return str(path)
