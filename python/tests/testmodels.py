"""Test models and inputs: the bench models, identity models per dtype, seeded inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from conftest import BENCH
from onnx import TensorProto, helper

BENCH_MODELS = ["mlp_small", "mlp_mnist", "lenet_small"]

ONNX_TYPES = {
    "f32": TensorProto.FLOAT,
    "f64": TensorProto.DOUBLE,
    "i8": TensorProto.INT8,
    "i16": TensorProto.INT16,
    "i32": TensorProto.INT32,
    "i64": TensorProto.INT64,
    "u8": TensorProto.UINT8,
    "u16": TensorProto.UINT16,
    "u32": TensorProto.UINT32,
    "u64": TensorProto.UINT64,
    "bool": TensorProto.BOOL,
    "string": TensorProto.STRING,
}


def bench(name: str) -> Path:
    return BENCH / f"{name}.onnx"


def input_of(path: Path, seed: int) -> tuple[str, npt.NDArray[np.float32]]:
    """The model's single input name and a seeded standard-normal f32 array of its shape (symbolic dims: 1)."""
    m = onnx.load(str(path))
    init = {i.name for i in m.graph.initializer}
    (inp,) = [i for i in m.graph.input if i.name not in init]
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
    return inp.name, np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def identity_model(dtype: str, path: Path) -> Path:
    """An ONNX Identity model over a [2, 3] tensor of `dtype`."""
    t = ONNX_TYPES[dtype]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        f"identity_{dtype}",
        [helper.make_tensor_value_info("x", t, [2, 3])],
        [helper.make_tensor_value_info("y", t, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def sample(dtype: str) -> npt.NDArray[Any]:
    """Six values of `dtype` including its extremes."""
    if dtype == "string":
        return np.array(["a", "", "ünï", "x y", '"q"', "z"]).reshape(2, 3)
    if dtype == "bool":
        return np.array([True, False, True, True, False, False]).reshape(2, 3)
    from vouch._tensors import DTYPES

    t = np.dtype(DTYPES[dtype])
    if t.kind == "f":
        return np.array([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf], t).reshape(2, 3)
    info = np.iinfo(t)
    return np.array([info.min, info.max, 0, 1, info.max - 1, info.min + 1], t).reshape(2, 3)


def reweighted(name: str, seed: int, path: Path) -> Path:
    """Bench model `name` with every float initializer scaled by a seeded factor in [0.9, 1.1]: the same structure,
    other weights (and another model id)."""
    m = onnx.load(str(bench(name)))
    rng = np.random.default_rng(seed)
    for init in m.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            w = onnx.numpy_helper.to_array(init) * np.float32(rng.uniform(0.9, 1.1))
            init.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), init.name))
    onnx.save(m, str(path))
    return path
