"""keras_aff.interop.read_mxnet_params: the NDArray list format, read on
files that tests/interop/mxnet_writer.py writes (every layout and dtype,
and broken files), and on the two files MXNet 1.9.1 wrote itself."""

import json
import re
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from keras_aff.interop import mxnet_format
from keras_aff.interop import read_mxnet_params
from tests.interop import fixtures
from tests.interop import mxnet_writer as writer
from tests.interop.mxnet_writer import ArraySpec

DTYPES = list(writer.FLAGS)
LAYOUTS = ["v3", "v2", "v1", "legacy"]
HEADER = 24  # list magic, reserved, array count
V2_HEAD = 4 + 4 + 4  # magic, storage type, ndim (then the int64 dims)


def _values(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(
        dtype
    )


def _read(tmp_path, data):
    path = tmp_path / "w.params"
    path.write_bytes(data)
    return read_mxnet_params(path)


def _error(tmp_path, data):
    with pytest.raises(ValueError) as info:
        _read(tmp_path, data)
    message = str(info.value)
    assert "w.params" in message
    return message


def _offset(message):
    return int(re.search(r"at byte offset (\d+)", message)[1])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_layout_round_trips(tmp_path, layout, dtype):
    arrays = {
        "features.0.weight": _values(dtype, (4, 3, 3, 3), seed=1),
        "features.1.gamma": _values(dtype, (4,), seed=2),
        "output.weight": _values(dtype, (2, 5), seed=3),
    }
    got = _read(tmp_path, writer.params_bytes(arrays, layout=layout))
    assert list(got) == list(arrays)
    for name, want in arrays.items():
        assert got[name].dtype == np.dtype(dtype)
        assert got[name].shape == want.shape
        np.testing.assert_array_equal(got[name], want)
        assert got[name].flags.writeable and got[name].flags.c_contiguous


def test_layouts_mix_in_one_file(tmp_path):
    specs = {
        f"a{i}": ArraySpec(_values("float32", (i + 1, 2), seed=i), layout=lay)
        for i, lay in enumerate(LAYOUTS)
    }
    got = _read(tmp_path, writer.params_bytes(specs))
    for name, spec in specs.items():
        np.testing.assert_array_equal(got[name], spec.array)


def test_v3_scalars_and_zero_size_arrays(tmp_path):
    arrays = {
        "scalar": ArraySpec(np.array(2.5, "float64"), layout="v3"),
        "empty": ArraySpec(np.zeros((0, 3), "float32")),
    }
    got = _read(tmp_path, writer.params_bytes(arrays))
    assert got["scalar"].shape == () and got["scalar"] == 2.5
    assert got["empty"].shape == (0, 3) and got["empty"].dtype == "float32"


def test_an_empty_list_and_an_unnamed_list(tmp_path):
    assert _read(tmp_path, writer.params_bytes({})) == {}
    arrays = [np.arange(3, dtype="int32"), np.ones((2,), "float16")]
    got = _read(tmp_path, writer.params_bytes(arrays))
    assert list(got) == ["0", "1"]
    np.testing.assert_array_equal(got["0"], arrays[0])
    np.testing.assert_array_equal(got["1"], arrays[1])


def test_big_endian_data_is_read_as_little_endian(tmp_path):
    # The file is little-endian whatever the host; values come back native.
    want = np.array([1.0, -2.0, 3.5], ">f4")
    got = _read(tmp_path, writer.params_bytes({"w": want}))["w"]
    assert got.dtype == np.dtype("float32") and got.dtype.isnative
    np.testing.assert_array_equal(got, want.astype("float32"))


def _one(spec, name="w"):
    return writer.params_bytes({name: spec})


F32 = np.ones((2, 3), "float32")
# (id, file bytes, message pattern, byte offset of the problem)
BROKEN = [
    ("header magic", writer.params_bytes({}, header=0x113), "0x113", 0),
    (
        "array magic",
        _one(ArraySpec(F32, magic=0xDEADBEEF)),
        "unknown magic 0xDEADBEEF",
        HEADER,
    ),
    (
        "row_sparse storage",
        _one(ArraySpec(F32, storage=1)),
        "row_sparse storage",
        HEADER + 4,
    ),
    ("csr storage", _one(ArraySpec(F32, storage=2)), "csr storage", HEADER + 4),
    (
        "bfloat16 dtype flag",
        _one(ArraySpec(F32, flag=12)),
        "unsupported dtype flag 12",
        HEADER + V2_HEAD + 16 + 8,
    ),
    (
        "unknown dtype flag",
        _one(ArraySpec(F32, flag=-3)),
        "unsupported dtype flag -3",
        HEADER + V2_HEAD + 16 + 8,
    ),
    (
        "uninitialised v2",
        _one(ArraySpec(np.zeros(()), layout="v2")),
        "uninitialised",
        HEADER,
    ),
    (
        "uninitialised legacy",
        _one(ArraySpec(np.zeros(()), layout="legacy")),
        "uninitialised",
        HEADER,
    ),
    (
        "negative dimension",
        _one(ArraySpec(F32, shape=(2, -3))),
        r"negative dimension in its shape \(2, -3\)",
        HEADER + 8,
    ),
    (
        "unknown v3 ndim",
        _one(ArraySpec(F32, layout="v3", ndim=-1, shape=())),
        "declares ndim -1",
        HEADER + 8,
    ),
    (
        "huge ndim",
        _one(ArraySpec(F32, ndim=2**31 - 1)),
        "declares ndim 2147483647",
        HEADER + 8,
    ),
    (
        "huge declared shape",
        _one(ArraySpec(F32, shape=(2**40, 2**20), data=b"")),
        r"truncated: the data of array 0 \(1099511627776, 1048576\)",
        HEADER + V2_HEAD + 16 + 12,
    ),
    (
        "huge array count",
        struct.pack("<QQQ", 0x112, 0, 2**60) + bytes(64),
        "declares 1152921504606846976 arrays",
        HEADER,
    ),
    (
        "huge name length",
        _one(F32)[: -(8 + 1)] + struct.pack("<Q", 2**62) + b"w",
        "name 0 needs 4611686018427387904 bytes",
        HEADER + V2_HEAD + 16 + 12 + 24 + 16,
    ),
    (
        "names for some arrays",
        writer.params_bytes({"a": F32, "b": F32}, names=["a"]),
        "2 arrays but 1 names",
        HEADER + 2 * (V2_HEAD + 16 + 12 + 24),
    ),
    (
        "a name twice",
        writer.params_bytes([F32, F32], names=["a", "a"]),
        "'a' appears twice",
        HEADER + 2 * (V2_HEAD + 16 + 12 + 24) + 8 + 9 + 8,
    ),
    (
        "a name that is not UTF-8",
        writer.params_bytes([F32], names=[b"\xff\xfe"]),
        "not UTF-8",
        HEADER + V2_HEAD + 16 + 12 + 24 + 16,
    ),
    (
        "trailing bytes",
        _one(F32) + b"\x00\x01",
        "2 unexpected bytes",
        len(_one(F32)),
    ),
]


@pytest.mark.parametrize(
    "data, pattern, offset", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_files_name_the_problem_and_the_byte_offset(
    tmp_path, data, pattern, offset
):
    message = _error(tmp_path, data)
    assert re.search(pattern, message), message
    assert _offset(message) == offset, message


def test_a_huge_declared_shape_fails_without_allocating(tmp_path):
    data = _one(ArraySpec(F32, shape=(2**40, 2**20), data=bytes(24)))
    tracemalloc.start()
    try:
        _error(tmp_path, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated"


def test_every_truncation_is_a_value_error(tmp_path):
    data = writer.params_bytes(
        {
            "a": ArraySpec(_values("float16", (2, 3)), layout="v2"),
            "b": ArraySpec(_values("int64", (3,)), layout="v1"),
            "c": ArraySpec(_values("uint8", (2, 2)), layout="legacy"),
        }
    )
    for size in range(len(data)):
        message = _error(tmp_path, data[:size])
        assert 0 <= _offset(message) <= size, (size, message)
        if size >= 8:  # past the header magic, the reader says it is short
            assert "truncated" in message or "declares" in message, message


@settings(max_examples=150, deadline=None)
@given(
    st.data(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
)
def test_corrupted_files_never_crash(tmp_path_factory, data, flips):
    # Random byte changes and cuts give a dict or a ValueError, nothing else.
    good = bytearray(
        writer.params_bytes(
            {
                "x": ArraySpec(_values("float32", (3, 2)), layout="v2"),
                "y": ArraySpec(_values("int8", (4,)), layout="legacy"),
            }
        )
    )
    for where, value in flips:
        good[where % len(good)] = value
    cut = data.draw(st.integers(0, len(good)))
    path = tmp_path_factory.mktemp("fuzz") / "f.params"
    path.write_bytes(bytes(good[:cut]))
    try:
        out = read_mxnet_params(path)
    except ValueError as e:
        assert "f.params" in str(e) and "byte offset" in str(e)
    else:
        assert all(isinstance(v, np.ndarray) for v in out.values())


def test_path_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Received: path='.*missing.params'"):
        read_mxnet_params(tmp_path / "missing.params")
    with pytest.raises(ValueError, match="directory"):
        read_mxnet_params(tmp_path)
    with pytest.raises(TypeError, match="Received: path=3"):
        read_mxnet_params(3)


def test_is_mxnet_params_reads_the_content_not_the_extension(tmp_path):
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(writer.params_bytes({"w": F32}))
    assert mxnet_format.is_mxnet_params(renamed)
    not_params = tmp_path / "w.params"
    not_params.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(16))
    assert not mxnet_format.is_mxnet_params(not_params)
    assert not mxnet_format.is_mxnet_params(tmp_path / "missing.params")


@pytest.mark.parametrize("name", fixtures.PARAMS_FILES)
def test_the_official_files_match_their_manifest(name):
    path = fixtures.path(name)
    manifest = json.loads(fixtures.path("manifest.json").read_text())
    got = read_mxnet_params(path)
    assert [[k, list(v.shape), v.dtype.name] for k, v in got.items()] == (
        manifest[name]
    )
    assert all(np.isfinite(v).all() for v in got.values())
