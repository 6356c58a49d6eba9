"""numpy arrays to and from the node's tensor JSON (`{"dtype", "shape", "data"}`), exactly as the node parses it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

# The node's dtype names (vouch_codec::DType) and their numpy types.
DTYPES: dict[str, npt.DTypeLike] = {
    "f32": np.float32,
    "f64": np.float64,
    "i8": np.int8,
    "i16": np.int16,
    "i32": np.int32,
    "i64": np.int64,
    "u8": np.uint8,
    "u16": np.uint16,
    "u32": np.uint32,
    "u64": np.uint64,
    "bool": np.bool_,
    "string": np.str_,
}
_NAMES = {np.dtype(t): name for name, t in DTYPES.items() if name != "string"}


def dtype_name(a: npt.NDArray[Any]) -> str:
    """The node's name for an array's dtype; raises `TypeError` for one the node has no tensor type for."""
    if a.dtype.kind == "U" or (a.dtype.kind == "O" and all(isinstance(x, str) for x in a.ravel())):
        return "string"
    name = _NAMES.get(a.dtype)
    if name is None:
        raise TypeError(f"numpy dtype {a.dtype} has no Vouch tensor type (supported: {', '.join(DTYPES)})")
    return name


def _float_json(x: float) -> float | str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def encode(a: npt.ArrayLike) -> dict[str, Any]:
    """The explicit tensor JSON of an array."""
    arr = np.asarray(a)
    name = dtype_name(arr)
    flat = arr.ravel()
    data: list[Any]
    if name in ("f32", "f64"):
        data = [_float_json(x) for x in flat.tolist()]
    elif name == "string":
        data = [str(x) for x in flat.tolist()]
    else:
        data = flat.tolist()
    return {"dtype": name, "shape": list(arr.shape), "data": data}


def _float_value(v: Any) -> float:
    if isinstance(v, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[v]
    return float(v)


def decode(t: Mapping[str, Any]) -> npt.NDArray[Any]:
    """An array from tensor JSON. Floats go through float64, as in the node's parser."""
    name = t["dtype"]
    if name not in DTYPES:
        raise ValueError(f"unknown tensor dtype {name!r}")
    shape = tuple(int(d) for d in t["shape"])
    data = t["data"]
    if name in ("f32", "f64"):
        arr = np.array([_float_value(v) for v in data], dtype=np.float64).astype(DTYPES[name])
    elif name == "string":
        arr = np.array([str(v) for v in data], dtype=object)
    else:
        arr = np.array(data, dtype=DTYPES[name])
    return arr.reshape(shape)


def decode_map(m: Mapping[str, Mapping[str, Any]]) -> dict[str, npt.NDArray[Any]]:
    """Named tensors from a JSON map."""
    return {name: decode(t) for name, t in m.items()}


def is_tensor_json(v: Any) -> bool:
    """Whether a value is already tensor JSON (`{"dtype", "shape", "data"}`)."""
    return isinstance(v, Mapping) and "dtype" in v and "data" in v


def encode_map(m: Mapping[str, Any]) -> dict[str, Any]:
    """Named tensors as JSON: arrays (or anything numpy takes) are encoded, tensor JSON is kept."""
    return {str(k): v if is_tensor_json(v) else encode(v) for k, v in m.items()}


def input_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An input document (`{"inputs": {name: tensor}}` or `{name: tensor}`) with its arrays encoded."""
    inner = doc.get("inputs")
    if isinstance(inner, Mapping) and len(doc) == 1:
        return {"inputs": encode_map(inner)}
    return encode_map(doc)
