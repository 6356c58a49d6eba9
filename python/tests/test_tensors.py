"""numpy arrays to tensor JSON and back, for every dtype the node has, without a node."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest

from vouch import _tensors

EXTREMES: dict[str, npt.NDArray[np.generic]] = {
    "f32": np.array([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf, 1e-45, 3.4028235e38, 0.1], np.float32),
    "f64": np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1.7976931348623157e308, 0.1], np.float64),
    "i8": np.array([-128, 0, 127], np.int8),
    "i16": np.array([-32768, 32767], np.int16),
    "i32": np.array([-(2**31), 2**31 - 1], np.int32),
    "i64": np.array([-(2**63), 2**63 - 1, 0], np.int64),
    "u8": np.array([0, 255], np.uint8),
    "u16": np.array([0, 65535], np.uint16),
    "u32": np.array([0, 2**32 - 1], np.uint32),
    "u64": np.array([0, 2**64 - 1], np.uint64),
    "bool": np.array([True, False], np.bool_),
    "string": np.array(["", "ascii", "ünïcödé ✓", 'quote"back\\slash']),
}


def same_bits(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> bool:
    """Equal dtype, shape and bits (strings: equal text)."""
    if a.dtype.kind in "UO":
        return a.shape == b.shape and [str(x) for x in a.ravel()] == [str(x) for x in b.ravel()]
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", sorted(EXTREMES))
def test_every_dtype_round_trips_through_json(name: str) -> None:
    a = EXTREMES[name]
    t = json.loads(json.dumps(_tensors.encode(a), allow_nan=False))
    assert t["dtype"] == name
    assert t["shape"] == [a.size]
    back = _tensors.decode(t)
    assert same_bits(a, back), (a, back)


def test_non_finite_floats_are_the_nodes_strings() -> None:
    t = _tensors.encode(np.array([np.nan, np.inf, -np.inf, -0.0], np.float32))
    assert t["data"][:3] == ["NaN", "Infinity", "-Infinity"]
    assert str(t["data"][3]) == "-0.0"


def test_shapes_are_kept_including_empty_and_rank_zero() -> None:
    arrays: list[npt.NDArray[np.generic]] = [
        np.zeros((0, 3), np.float32),
        np.array(7, np.int64),
        np.arange(24, dtype=np.int16).reshape(2, 3, 4),
    ]
    for a in arrays:
        back = _tensors.decode(_tensors.encode(a))
        assert back.shape == a.shape and back.dtype == a.dtype and np.array_equal(back, a)


def test_every_f32_decodes_to_the_same_bits_through_float64() -> None:
    bits = np.random.default_rng(7).integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    a = bits.view(np.float32)
    a = a[np.isfinite(a)]
    back = _tensors.decode(json.loads(json.dumps(_tensors.encode(a))))
    assert back.view(np.uint32).tolist() == a.view(np.uint32).tolist()


@pytest.mark.parametrize("dtype", [np.float16, np.complex64])
def test_dtypes_without_a_tensor_type_are_refused(dtype: npt.DTypeLike) -> None:
    with pytest.raises(TypeError, match="has no Vouch tensor type"):
        _tensors.encode(np.zeros(2, dtype))


def test_an_unknown_dtype_in_json_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown tensor dtype 'f16'"):
        _tensors.decode({"dtype": "f16", "shape": [1], "data": [0]})
