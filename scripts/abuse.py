#!/usr/bin/env python3
"""Load and abuse a real node on loopback, bounded (about two minutes), and print a table.

Starts `vouch node run --dev` in a temp home (and a second node with a small receipt quota), then runs the probes of
the hardening issue in one go: normal load, uploads that stall, a Range sized by the request, ranks above the limit,
fuzzed HTTP, mutated and duplicated receipts, connections that never send, a push to another account's name, a
client over its quota, an execute height far past the tip. Prints, per probe: requests, statuses, p50/p99 latency;
then the node's RSS before and after and the panics in its log (there must be none).

Usage: scripts/abuse.py [--vouch PATH] [--models DIR]   (build first: cargo build --release -p vouch-cli)
Loopback only; stdlib only.
"""

import argparse
import collections
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_vouch():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "vouch")


class Node:
    def __init__(self, vouch, home, config=""):
        os.makedirs(home, exist_ok=True)
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write(config)
        self.vouch, self.home = vouch, home
        self.log = open(os.path.join(home, "node.log"), "w")
        self.proc = subprocess.Popen(
            [vouch, "node", "run", "--dev", "--listen", "127.0.0.1:0", "--home", home],
            stdout=subprocess.PIPE, stderr=self.log, env={**os.environ, "VOUCH_LOG": "info"}, text=True)
        line = self.proc.stdout.readline().strip()
        self.url = line.rsplit(" ", 1)[-1]
        host, port = self.url.replace("http://", "").split(":")
        self.addr = (host, int(port))

    def cli(self, *args, check=True):
        env = {**os.environ, "VOUCH_NODE": self.url, "VOUCH_HOME": self.home}
        env.pop("VOUCH_ACCOUNT", None)
        out = subprocess.run([self.vouch, *args], env=env, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"vouch {args}: {out.stderr}")
        return out

    def status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) // 1024
        return 0

    def panics(self):
        self.log.flush()
        with open(os.path.join(self.home, "node.log"), errors="replace") as f:
            return sum("panicked" in line for line in f)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


def request(addr, method, path, body=b"", headers="", timeout=30.0):
    """One request on a fresh connection: (status or an error name, seconds, parsed JSON or None)."""
    start = time.monotonic()
    try:
        s = socket.create_connection(addr, timeout=timeout)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                  f"{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
    except OSError as e:
        return type(e).__name__, time.monotonic() - start, None
    elapsed = time.monotonic() - start
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split()[1])
    except (IndexError, ValueError):
        return "garbled", elapsed, None
    try:
        return status, elapsed, json.loads(rest)
    except ValueError:
        return status, elapsed, None


class Probe:
    def __init__(self, name):
        self.name, self.statuses, self.times, self.lock = name, collections.Counter(), [], threading.Lock()

    def record(self, status, seconds, code=None):
        with self.lock:
            self.statuses[f"{status}" + (f" {code}" if code else "")] += 1
            self.times.append(seconds)

    def row(self):
        t = sorted(self.times) or [0.0]
        p = lambda q: t[min(len(t) - 1, int(q * len(t)))] * 1000
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(self.statuses.items()))
        return f"| {self.name} | {len(self.times)} | {statuses} | {p(0.5):.1f} | {p(0.99):.1f} |"


def parallel(n_threads, n_requests, fn):
    it = iter(range(n_requests))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            fn(i)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    [t.start() for t in threads]
    [t.join() for t in threads]


def as_f32(v):
    """Every float as the f32 it denotes (receipt tensors are f32 or exact integers)."""
    if isinstance(v, float):
        return struct.unpack("f", struct.pack("f", v))[0]
    if isinstance(v, list):
        return [as_f32(x) for x in v]
    if isinstance(v, dict):
        return {k: as_f32(x) for k, x in v.items()}
    return v


def code_of(body):
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vouch", default=default_vouch())
    ap.add_argument("--models", default=os.path.join(ROOT, "..", "shared", "bench", "models"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vouch-abuse-")
    node = Node(args.vouch, os.path.join(work, "node"), "body_timeout_secs = 5\nheader_timeout_secs = 5\n")
    probes = []
    try:
        node.cli("model", "push", os.path.join(args.models, "mlp_small.onnx"), "--name", "mlp")
        x = [[i / 16 for i in range(16)]]
        infer = json.dumps({"model": "mlp", "inputs": {"x": x}}).encode()
        rss_before = node.status("VmRSS")

        p = Probe("inference, 8 clients")
        def one(_):
            s, t, b = request(node.addr, "POST", "/v1/infer", infer)
            p.record(s, t, code_of(b))
        parallel(8, 1000, one)
        probes.append(p)

        # 100 uploads that send one byte and stall, while 8 clients keep inferring.
        stalled = []
        for i in range(100):
            s = socket.create_connection(node.addr)
            s.sendall(f"POST /v1/models/slow{i}/versions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nx".encode())
            stalled.append(s)
        p = Probe("inference during 100 stalled uploads")
        parallel(8, 400, one)
        probes.append(p)
        u = Probe("the stalled uploads")
        for s in stalled:
            s.settimeout(30)
            start = time.monotonic()
            try:
                data = s.recv(4096)
                status = int(data.split()[1]) if data else "closed"
                body = json.loads(data.partition(b"\r\n\r\n")[2] or b"{}") if data else None
            except (OSError, ValueError, IndexError):
                status, body = "error", None
            u.record(status, time.monotonic() - start, code_of(body))
            s.close()
        probes.append(u)

        # A Range sized by the request.
        range_path = os.path.join(work, "range.onnx")
        make_range(range_path)
        node.cli("model", "push", range_path, "--name", "range")
        hwm = node.status("VmHWM")
        p = Probe("Range of 300M elements")
        scalar = lambda v: {"dtype": "i64", "shape": [], "data": [v]}
        body = json.dumps({"model": "range", "inputs": {"start": scalar(0), "limit": scalar(300_000_000),
                                                        "delta": scalar(1)}}).encode()
        for _ in range(20):
            s, t, b = request(node.addr, "POST", "/v1/infer", body)
            p.record(s, t, code_of(b))
        p.name += f" (peak RSS +{node.status('VmHWM') - hwm} MiB)"
        probes.append(p)

        p = Probe("ranks 256 and 20")
        for rank in [256, 20] * 10:
            t = {"dtype": "f32", "shape": [1] * rank, "data": [1.0]}
            s, dt, b = request(node.addr, "POST", "/v1/infer", json.dumps({"model": "mlp", "inputs": {"x": t}}).encode())
            p.record(s, dt, code_of(b))
        probes.append(p)

        p = Probe("fuzzed HTTP")
        rng = random.Random(11)
        paths = ["/v1/infer", "/v1/verify", "/v1/models", "/v1/models/mlp", "/v1/models/x/versions", "/v1/calibrations",
                 "/v1/receipts/" + "ab" * 32, "/v1/jobs/prepare", "/v1/jobs/" + "cd" * 32 + "/execute", "/v1/ledger/txs",
                 "/v1/ledger/blocks/1", "/v1/node", "/metrics", "/nope", "/v1/blobs/zzz"]
        def fuzzed(_):
            method = rng.choice(["GET", "POST", "PUT", "DELETE"])
            path = rng.choice(paths) + rng.choice(["", "?x=1", "?version=9.9", "%00", "/../.."])
            body = rng.choice([b"", b"{", b"null", b"[]", infer, infer[: rng.randrange(len(infer))],
                               bytes(rng.randrange(256) for _ in range(rng.randrange(512)))])
            s, t, b = request(node.addr, method, path, body)
            p.record(s, t, None)
        parallel(8, 2000, fuzzed)
        probes.append(p)

        status, _, receipt = request(node.addr, "POST", "/v1/infer", infer)
        text = json.dumps(receipt)
        p = Probe("mutated receipts at /v1/verify")
        accepted_changed = 0
        for i in range(1000):
            chars = list(text)
            for _ in range(rng.randrange(1, 4)):
                chars[rng.randrange(len(chars))] = rng.choice("0123456789abcdef\"{}[],:")
            mutated = "".join(chars)
            s, t, b = request(node.addr, "POST", "/v1/verify", mutated.encode())
            valid = isinstance(b, dict) and b.get("valid") is True
            if valid:
                # A changed digit can leave an f32 element the same value (0.10000000149011612 and ...13 are one
                # f32): compare values, not text.
                try:
                    changed = as_f32(json.loads(mutated)) != as_f32(receipt)
                except ValueError:
                    changed = True
                accepted_changed += changed
            p.record(s, t, "valid" if valid else None)
        p.name += f" ({accepted_changed} changed ones accepted)"
        probes.append(p)

        p = Probe("evidence repeated 240 times")
        dup = dict(receipt)
        dup["evidence"] = receipt["evidence"] * 241
        for _ in range(10):
            s, t, b = request(node.addr, "POST", "/v1/verify", json.dumps(dup).encode())
            p.record(s, t, "valid" if isinstance(b, dict) and b.get("valid") else "refused")
        probes.append(p)

        p = Probe("300 connections that never send")
        idle = [socket.create_connection(node.addr) for _ in range(300)]
        for s in idle:
            s.settimeout(30)
            start = time.monotonic()
            try:
                closed = s.recv(1) == b""
            except OSError:
                closed = False
            p.record("closed by the node" if closed else "still open", time.monotonic() - start)
            s.close()
        probes.append(p)

        p = Probe("push to another account's name")
        other = os.path.join(work, "other.key")
        node.cli("account", "new", other)
        for _ in range(5):
            start = time.monotonic()
            out = node.cli("model", "push", os.path.join(args.models, "mlp_mnist.onnx"), "--name", "mlp",
                           "--account", other, check=False)
            p.record(f"exit {out.returncode}", time.monotonic() - start, "name_owned" if "name_owned" in out.stderr else None)
        probes.append(p)

        p = Probe("execute at height 2^64-1")
        for _ in range(100):
            s, t, b = request(node.addr, "POST", "/v1/jobs/" + "ab" * 32 + "/execute",
                             json.dumps({"inputs": {}, "min_height": 2**64 - 1}).encode())
            p.record(s, t, code_of(b))
        probes.append(p)

        quota = Node(args.vouch, os.path.join(work, "quota"), "[quotas]\nreceipts = 50\n")
        try:
            quota.cli("model", "push", os.path.join(args.models, "mlp_small.onnx"), "--name", "mlp")
            p = Probe("a client with a quota of 50 receipts")
            for _ in range(60):
                s, t, b = request(quota.addr, "POST", "/v1/infer", infer)
                p.record(s, t, code_of(b))
            probes.append(p)
            quota_panics = quota.panics()
        finally:
            quota.stop()

        print("| probe | requests | statuses | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for p in probes:
            print(p.row())
        print()
        print(f"node RSS: {rss_before} MiB before the probes, {node.status('VmRSS')} MiB after, "
              f"peak {node.status('VmHWM')} MiB; panics in the logs: {node.panics() + quota_panics}")
    finally:
        node.stop()


def make_range(path):
    """An ONNX model `Range(start, limit, delta)` over int64 scalars, written with the onnx package."""
    import onnx
    from onnx import TensorProto, helper
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, []) for n in ("start", "limit", "delta")]
    graph = helper.make_graph([helper.make_node("Range", ["start", "limit", "delta"], ["y"])], "range", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


if __name__ == "__main__":
    sys.exit(main())
