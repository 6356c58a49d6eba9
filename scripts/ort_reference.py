#!/usr/bin/env python3
# Numerical oracle for tests: runs an ONNX model with onnxruntime (CPU) on a Vouch input document and prints
# the outputs as Vouch tensor JSON ({name: {dtype, shape, data}}).
# Usage: python3 scripts/ort_reference.py MODEL.onnx INPUT.json
# INPUT.json may also be a JSON array of input documents (a calibration set): the output is then an array.
import json, sys
import numpy as np
import onnxruntime as ort

DTYPES = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "i32": np.int32, "i16": np.int16,
          "i8": np.int8, "u64": np.uint64, "u32": np.uint32, "u16": np.uint16, "u8": np.uint8, "bool": np.bool_}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}

def run(sess, doc):
    inputs = doc.get("inputs", doc)
    feed = {}
    for name, t in inputs.items():
        data = [float("nan") if v == "NaN" else v for v in t["data"]]
        feed[name] = np.array(data, dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    names = [o.name for o in sess.get_outputs()]
    out = {}
    for name, v in zip(names, sess.run(names, feed)):
        v = np.asarray(v)
        out[name] = {"dtype": NAMES.get(v.dtype, str(v.dtype)), "shape": list(v.shape), "data": v.reshape(-1).tolist()}
    return out

def main():
    model, doc = sys.argv[1], json.load(open(sys.argv[2]))
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    json.dump([run(sess, d) for d in doc] if isinstance(doc, list) else run(sess, doc), sys.stdout)

main()
