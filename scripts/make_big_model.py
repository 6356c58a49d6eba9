#!/usr/bin/env python3
# Writes a large (~1 GiB by default) valid ONNX model (y = x @ W, W stored inline as raw_data,
# not external data) for upload/download benchmarks.
# Usage: python3 scripts/make_big_model.py OUT.onnx [--mib 1024]
# Needs: pip install onnx numpy
import argparse
import math

import numpy as np
from onnx import GraphProto, ModelProto, TensorProto, helper


def key_len(field_number, length):
    """Protobuf tag (wire type 2 = length-delimited) followed by the varint length."""
    out, v = bytearray(), (field_number << 3) | 2
    for v in (v, length):
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def field_no(desc, name):
    return desc.fields_by_name[name].number


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--mib", type=int, default=1024, help="approximate size of W in MiB")
    args = ap.parse_args()

    n = max(1, math.isqrt(args.mib * 1024 * 1024 // 4))  # 1024 MiB -> N = 16384
    # Cheap deterministic fill (period-251 ramp, small values so outputs stay finite).
    pattern = (np.arange(251, dtype=np.float32) - 125.0) / 1024.0
    w = np.resize(pattern, n * n).astype("<f4", copy=False)  # raw_data is little-endian

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "big_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="vouch-make-big-model")
    model.ir_version = 8

    # Protobuf serialization would hold W two or three times over; instead serialize everything
    # except W's bytes and stream W straight from the numpy buffer (protobuf allows any field order).
    graph_head = model.graph.SerializeToString()
    model.ClearField("graph")
    model_head = model.SerializeToString()
    tensor_head = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[n, n]).SerializeToString()
    tensor_head += key_len(field_no(TensorProto.DESCRIPTOR, "raw_data"), w.nbytes)
    tensor_len = len(tensor_head) + w.nbytes
    init_key = key_len(field_no(GraphProto.DESCRIPTOR, "initializer"), tensor_len)
    graph_len = len(graph_head) + len(init_key) + tensor_len
    with open(args.out, "wb") as f:
        f.write(model_head)
        f.write(key_len(field_no(ModelProto.DESCRIPTOR, "graph"), graph_len))
        f.write(graph_head)
        f.write(init_key)
        f.write(tensor_head)
        f.write(memoryview(w))
    print(f"wrote {args.out}: N={n}, W={w.nbytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
