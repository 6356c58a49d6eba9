"""`vouch.verify` in Python next to `vouch verify` (the CLI), per receipt kind, on the same files.

    python python/bench/verify_bench.py --vouch target/release/vouch [--runs 30] [--cli-runs 10]

Starts a dev node with the given binary, makes one receipt of each kind (signed; anchored, checked against the
genesis; zk on the three bench models; zk with a private input, opened), then times each verification: in-process
for Python (the installed `vouch` package), and the whole process for the CLI (start-up included, which is what a
script that shells out pays). Prints a Markdown table of medians and their ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import vouch

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "models"


def input_of(model: str, seed: int) -> tuple[str, np.ndarray[Any, Any]]:
    m = onnx.load(str(BENCH / f"{model}.onnx"))
    init = {i.name for i in m.graph.initializer}
    (inp,) = [i for i in m.graph.input if i.name not in init]
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
    return inp.name, np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def median_s(f: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vouch", required=True, help="the vouch binary (release)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cli-runs", type=int, default=10)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    home = tmp / "home"
    proc = subprocess.Popen(
        [a.vouch, "node", "run", "--dev", "--listen", "127.0.0.1:0", "--home", str(home)],
        stdout=subprocess.PIPE,
        env={**os.environ, "VOUCH_LOG": "warn"},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip().removeprefix("vouch node listening on ")
    os.environ["VOUCH_HOME"] = str(home)
    cases: list[tuple[str, Path, dict[str, Any]]] = []
    try:
        c = vouch.Client(url)
        c.models.push(BENCH / "mlp_small.onnx", name="signed")
        _, x = input_of("mlp_small", 1)
        r = c.infer("signed", x).receipt
        r.dump(tmp / "signed.json")
        cases.append(("signed", tmp / "signed.json", {}))
        c.receipts.wait(r.id).dump(tmp / "anchored.json")
        cases.append(("signed + anchor (genesis)", tmp / "anchored.json", {"genesis": home / "genesis.json"}))
        for model in ["mlp_small", "mlp_mnist", "lenet_small"]:
            cal = [dict([input_of(model, 100 + i)]) for i in range(8)]
            c.models.push(BENCH / f"{model}.onnx", name=f"zk-{model}", zk=True, calibration=cal)
            _, xz = input_of(model, 2)
            c.infer(f"zk-{model}", xz, mode="zk").receipt.dump(tmp / f"zk-{model}.json")
            cases.append((f"zk {model}", tmp / f"zk-{model}.json", {}))
        name, xp = input_of("mlp_small", 3)
        p = c.infer("zk-mlp_small", {name: xp}, mode="zk", private_input=True)
        p.receipt.dump(tmp / "private.json")
        (tmp / "input.json").write_text(json.dumps({name: vouch._tensors.encode(xp)}))
        assert p.salt is not None
        cases.append(
            ("zk private mlp_small, opened", tmp / "private.json", {"input": tmp / "input.json", "salt": p.salt})
        )
        c.close()
    finally:
        proc.terminate()
        proc.wait()

    print(
        f"| receipt | Python `vouch.verify` (in process, median of {a.runs}) "
        f"| CLI `vouch verify` (whole process, median of {a.cli_runs}) | CLI / Python |"
    )
    print("|---|---|---|---|")
    for label, path, opts in cases:
        assert vouch.verify(path, **opts).ok, label
        py = median_s(functools.partial(vouch.verify, path, **opts), a.runs)
        flags = [x for k, v in opts.items() for x in (f"--{k}", str(v))]
        cmd = [a.vouch, "verify", str(path), *flags]
        assert subprocess.run(cmd, capture_output=True).returncode == 0, label
        cli = median_s(functools.partial(subprocess.run, cmd, capture_output=True, check=True), a.cli_runs)
        print(f"| {label} | {py * 1e3:.2f} ms | {cli * 1e3:.2f} ms | {cli / py:.1f}x |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
