"""llama.cpp itself (the prebuilt `xllamacpp` wheel from PyPI) as the reference for Vouch's LLM engine; used only by
tests and benchmarks.

  llama_reference.py tokens MODEL.gguf PROMPTS.json N THREADS
      PROMPTS.json is a JSON array of prompts, each a list of token ids. Prints a JSON array with, per prompt, the
      greedy completion's token ids (at most N; llama.cpp stops at an end-of-generation token).
  llama_reference.py bench MODEL.gguf PROMPT_TOKENS N THREADS
      Prints JSON timings of one greedy completion of N tokens from a prompt of PROMPT_TOKENS tokens: prefill tokens/s,
      decode tokens/s, time to first token (ms), as llama.cpp's server reports them.
"""

import json
import sys
import time

import xllamacpp as x


def server(model, threads, n_ctx):
    p = x.CommonParams()
    p.model.path = model
    p.n_ctx = n_ctx
    p.n_parallel = 1
    p.n_batch = 256
    p.n_ubatch = 256
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.warmup = False
    p.cache_prompt = False
    # As Vouch runs it: plain attention (flash attention's decode kernel depends on the thread count).
    p.flash_attn_type = x.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    return x.Server(p)


def complete(s, prompt, n, **extra):
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "cache_prompt": False, "logprobs": 1}
    body.update(extra)
    r = s.handle_completions(body)
    if "error" in r:
        raise SystemExit(f"llama.cpp: {r['error']}")
    return r


def main():
    mode, model = sys.argv[1], sys.argv[2]
    if mode == "tokens":
        prompts = json.load(open(sys.argv[3]))
        n, threads = int(sys.argv[4]), int(sys.argv[5])
        s = server(model, threads, 1024)
        out = []
        for p in prompts:
            r = complete(s, p, n)
            content = (r["choices"][0].get("logprobs") or {}).get("content") or []
            out.append([c["id"] for c in content])
        print(json.dumps(out))
    elif mode == "bench":
        prompt_tokens, n, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        s = server(model, threads, 2048)
        # A prompt of exactly PROMPT_TOKENS ids (token 100 repeated after BOS-free start); greedy, never stopping early.
        prompt = [100 + (i % 50) for i in range(prompt_tokens)]
        # No logprobs here (the token mode needs them): llama.cpp's server then skips the softmax over the vocabulary.
        complete(s, prompt[:8], 4, ignore_eos=True, logprobs=0)  # warm-up
        started = time.perf_counter()
        r = complete(s, prompt, n, ignore_eos=True, logprobs=0)
        wall = time.perf_counter() - started
        t = r["timings"]
        print(
            json.dumps(
                {
                    "prefill_tok_s": t["prompt_per_second"],
                    "decode_tok_s": t["predicted_per_second"],
                    "ttft_ms": t["prompt_ms"] + t["predicted_per_token_ms"],
                    "tokens": t["predicted_n"],
                    "wall_s": wall,
                }
            )
        )
    else:
        raise SystemExit(__doc__)


main()
