# EZKL end to end on one model with its parameters hashed (`param_visibility="hashed"`: a Poseidon hash of the
# weights is a public input, the weights stay in the witness), the EZKL counterpart of `--private-weights`. The
# input stays private as in ../shared/bench/ezkl_reference.py. Prints the seconds of each step and the proof size.
import asyncio
import json
import os
import sys
import time

import ezkl
import numpy as np
import onnx

name = sys.argv[1]
d = f"ezh_{name}"
os.makedirs(d, exist_ok=True)
m = f"{name}.onnx"
mod = onnx.load(m)
n = int(np.prod([x.dim_value for x in mod.graph.input[0].type.tensor_type.shape.dim]))
x = np.random.default_rng(1).standard_normal(n).tolist()
json.dump({"input_data": [x]}, open(f"{d}/input.json", "w"))
T = {}


def t(k, f):
    s = time.time()
    r = f()
    if asyncio.iscoroutine(r):
        r = asyncio.run(r)
    T[k] = round(time.time() - s, 3)
    return r


args = ezkl.PyRunArgs()
args.param_visibility = "hashed"
args.input_visibility = "private"
args.output_visibility = "public"
t("gen_settings", lambda: ezkl.gen_settings(m, f"{d}/settings.json", py_run_args=args))
try:
    t("calibrate", lambda: ezkl.calibrate_settings(f"{d}/input.json", m, f"{d}/settings.json", "resources"))
except Exception as e:  # noqa: BLE001
    print("calibrate err", e)
t("compile", lambda: ezkl.compile_circuit(m, f"{d}/model.compiled", f"{d}/settings.json"))
s = json.load(open(f"{d}/settings.json"))
print("logrows", s["run_args"]["logrows"], "param_visibility", s["run_args"]["param_visibility"])
t("gen_srs", lambda: ezkl.gen_srs(f"{d}/kzg.srs", s["run_args"]["logrows"]))
t("witness", lambda: ezkl.gen_witness(f"{d}/input.json", f"{d}/model.compiled", f"{d}/witness.json"))
t("setup", lambda: ezkl.setup(f"{d}/model.compiled", f"{d}/vk.key", f"{d}/pk.key", f"{d}/kzg.srs"))
t("prove", lambda: ezkl.prove(f"{d}/witness.json", f"{d}/model.compiled", f"{d}/pk.key", f"{d}/proof.json", f"{d}/kzg.srs"))
t("verify", lambda: ezkl.verify(f"{d}/proof.json", f"{d}/settings.json", f"{d}/vk.key", f"{d}/kzg.srs"))
print(name, T, "proof bytes", os.path.getsize(f"{d}/proof.json"), "pk bytes", os.path.getsize(f"{d}/pk.key"))
