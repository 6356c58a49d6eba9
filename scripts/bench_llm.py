"""LLM serving benchmark for BENCHMARKS.md: Vouch's decode loop and llama.cpp (the `xllamacpp` wheel) on the same GGUF
files in the same run, then tokens/s through a Vouch node's OpenAI streaming API with 1 and 4 concurrent clients.

  python3 scripts/bench_llm.py [--vouch-bench BIN] [--vouch BIN] [--reps 3]

Engine rows: 1 and 2 threads, prompts of 32 and 256 tokens, 64 greedy tokens each (end-of-generation ignored); each
side runs in its own process (peak RSS from wait4), alternating Vouch and llama.cpp, the median of --reps runs
reported. Time to first token: Vouch's is measured from the request to the first sampled token (a fresh context per
request, as the node serves); llama.cpp's is its server's prompt time plus one decode step (its context persists).
Prints Markdown.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = [
    ("SmolLM2-135M-Instruct Q4_1", "smollm2-135m-instruct-q4_1.gguf"),
    ("Gemma 3 270M Q4_K_M", "gemma-3-270m-q4_k_m.gguf"),
]
DECODE = 64


def measured(cmd):
    # Popen.communicate reaps the child, so use wait4 directly for its rusage.
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)}: wait status {status}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def engine_rows(args, models):
    lines = [
        "| model | threads | prompt | Vouch decode tok/s | llama.cpp decode tok/s | ratio | Vouch prefill tok/s |"
        " llama.cpp prefill tok/s | ratio | Vouch TTFT ms | llama.cpp TTFT ms | ratio | Vouch RSS MiB |"
        " llama.cpp RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, path in models:
        for threads in args.threads:
            for prompt in (32, 256):
                v, r, vrss, rrss = [], [], [], []
                for _ in range(args.reps):
                    out, rss = measured([args.vouch_bench, path, str(prompt), str(DECODE), str(threads)])
                    v.append(out)
                    vrss.append(rss)
                    out, rss = measured([sys.executable, os.path.join(ROOT, "scripts", "llama_reference.py"), "bench",
                                         path, str(prompt), str(DECODE), str(threads)])
                    r.append(out)
                    rrss.append(rss)
                vd, rd = median(v, "decode_tok_s"), median(r, "decode_tok_s")
                vp, rp = median(v, "prefill_tok_s"), median(r, "prefill_tok_s")
                vt, rt = median(v, "ttft_ms"), median(r, "ttft_ms")
                lines.append(
                    f"| {label} | {threads} | {prompt} | {vd:.1f} | {rd:.1f} | {vd / rd:.2f} | {vp:.0f} | {rp:.0f} |"
                    f" {vp / rp:.2f} | {vt:.1f} | {rt:.1f} | {vt / rt:.2f} | {max(vrss):.0f} | {max(rrss):.0f} |")
                print(lines[-1], file=sys.stderr, flush=True)
    return lines


def stream_one(url, model, max_tokens, results, index):
    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="bench", max_retries=0, timeout=600)
    started = time.perf_counter()
    first = None
    tokens = 0
    stream = client.chat.completions.create(
        model=model, max_tokens=max_tokens, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"Write a long story about a lighthouse keeper, number {index}."}])
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    results[index] = (tokens, time.perf_counter() - started, first)


def http_rows(args, models):
    lines = ["| model | clients | completion tokens | wall s | aggregate tok/s | per-client tok/s | median TTFT ms |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as home:
        log = open(os.path.join(home, "node.log"), "w")
        node = subprocess.Popen([args.vouch, "node", "run", "--dev", "--listen", "127.0.0.1:0", "--home", home],
                                stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            url = node.stdout.readline().strip().rsplit(" ", 1)[-1]
            env = {**os.environ, "VOUCH_NODE": url, "VOUCH_HOME": home}
            for i, (label, path) in enumerate(models):
                subprocess.run([args.vouch, "model", "push", path, "--name", f"m{i}"], env=env, check=True,
                               capture_output=True)
                for clients in (1, 4):
                    # Warm the node's model cache first.
                    stream_one(url, f"m{i}", 4, {}, 0)
                    results = {}
                    started = time.perf_counter()
                    ts = [threading.Thread(target=stream_one, args=(url, f"m{i}", 128, results, c))
                          for c in range(clients)]
                    for t in ts:
                        t.start()
                    for t in ts:
                        t.join()
                    wall = time.perf_counter() - started
                    total = sum(r[0] for r in results.values())
                    per = statistics.median(r[0] / r[1] for r in results.values())
                    ttft = statistics.median(r[2] * 1e3 for r in results.values() if r[2] is not None)
                    lines.append(f"| {label} | {clients} | {total} | {wall:.2f} | {total / wall:.1f} | {per:.1f} |"
                                 f" {ttft:.0f} |")
                    print(lines[-1], file=sys.stderr, flush=True)
        finally:
            node.terminate()
            node.wait(timeout=30)
    return lines


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vouch-bench", help="the built `llm` bench binary (default: newest target/release/deps/llm-*)")
    ap.add_argument("--vouch", default=os.path.join(target, "release", "vouch"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default=os.path.join(ROOT, ".cache", "models"))
    ap.add_argument("--only", help="run only the model whose file name contains this")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-http", action="store_true", help="skip the streaming rows")
    args = ap.parse_args()
    if args.vouch_bench is None:
        deps = os.path.join(target, "release", "deps")
        bins = [os.path.join(deps, f) for f in os.listdir(deps)
                if f.startswith("llm-") and os.access(os.path.join(deps, f), os.X_OK) and "." not in f]
        args.vouch_bench = max(bins, key=os.path.getmtime)
    models = [(label, os.path.join(args.models, f)) for label, f in MODELS if args.only is None or args.only in f]
    import xllamacpp

    print(f"xllamacpp {getattr(xllamacpp, '__version__', '?')}, {DECODE} greedy tokens, median of {args.reps}\n")
    print("\n".join(engine_rows(args, models)))
    if not args.no_http:
        print()
        print("\n".join(http_rows(args, models)))


if __name__ == "__main__":
    main()
