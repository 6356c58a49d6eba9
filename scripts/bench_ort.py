#!/usr/bin/env python3
# onnxruntime reference benchmark for the Vouch bench models (single-thread latency + multi-thread throughput).
# Usage: python3 scripts/bench_ort.py MODELS_DIR [--iters N] [--json]
# Needs: pip install onnxruntime numpy
import argparse, json, os, threading, time

import numpy as np
import onnxruntime as ort

MODELS = ["mlp_small", "mlp_mnist", "lenet_small"]
WARMUP, THROUGHPUT_SECONDS = 50, 2.0


def make_session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one inference uses one core, like our engine
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def make_feed(sess):
    rng = np.random.default_rng(0)
    return {i.name: rng.uniform(-1.0, 1.0, size=i.shape).astype(np.float32) for i in sess.get_inputs()}


def bench_latency(sess, feed, iters):
    for _ in range(WARMUP):
        sess.run(None, feed)
    times = np.empty(iters, dtype=np.float64)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        times[i] = time.perf_counter_ns() - t0
    times /= 1000.0
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), float(times.mean())


def bench_throughput(sess, feed, threads):
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(idx):
        barrier.wait()
        deadline, n = time.perf_counter() + THROUGHPUT_SECONDS, 0
        while time.perf_counter() < deadline:
            sess.run(None, feed)
            n += 1
        counts[idx] = n

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description="onnxruntime reference benchmark")
    ap.add_argument("models_dir")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    threads = os.cpu_count() or 1
    results = {}
    for name in MODELS:
        sess = make_session(os.path.join(args.models_dir, name + ".onnx"))
        feed = make_feed(sess)
        p50, p99, mean = bench_latency(sess, feed, args.iters)
        tput = bench_throughput(sess, feed, threads)
        results[name] = {"p50_us": round(p50, 2), "p99_us": round(p99, 2), "mean_us": round(mean, 2),
                         "throughput_per_s": round(tput, 1), "threads": threads}

    if args.json:
        print(json.dumps(results))
        return
    print(f"onnxruntime {ort.__version__}, intra_op_num_threads=1, iters={args.iters}")
    print(f"{'model':<12} {'p50 us':>10} {'p99 us':>10} {'mean us':>10} {'inf/s':>12} {'threads':>8}")
    for name, r in results.items():
        print(f"{name:<12} {r['p50_us']:>10.2f} {r['p99_us']:>10.2f} {r['mean_us']:>10.2f} "
              f"{r['throughput_per_s']:>12.1f} {r['threads']:>8}")


if __name__ == "__main__":
    main()
