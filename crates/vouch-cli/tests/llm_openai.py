"""The real `openai` client (PyPI) against a Vouch node: chat without and with streaming (include_usage), a legacy
completion, models.list, a 400 raised as the client's exception, and the receipt read from `model_extra`.

Usage: llm_openai.py NODE_URL MODEL OUT_DIR. Writes each receipt and response JSON to OUT_DIR and prints a summary
(JSON) on stdout; any failed expectation exits non-zero with its reason.
"""

import json
import sys

import openai
from openai import OpenAI

node, model, out = sys.argv[1:4]
client = OpenAI(base_url=node + "/v1", api_key="anything")
summary = {}


def save(name, value):
    with open(f"{out}/{name}.json", "w") as f:
        json.dump(value, f, indent=1)


messages = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]

# Chat, no stream.
chat = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=0)
vouch = chat.model_extra["vouch"]
assert vouch["receipt_id"] == vouch["receipt"]["id"], vouch
assert chat.choices[0].message.role == "assistant"
assert chat.usage.completion_tokens == len(vouch["receipt"]["outputs"]["tokens"]["data"]), chat.usage
save("chat-receipt", vouch["receipt"])
save("chat-response", chat.model_dump())
summary["chat"] = {
    "text": chat.choices[0].message.content,
    "finish_reason": chat.choices[0].finish_reason,
    "usage": chat.usage.model_dump(),
    "id": chat.id,
    "fingerprint": chat.system_fingerprint,
    "logits_digest": vouch["logits_digest"],
}

# Chat, streamed, with usage: the same greedy text, token by token; the receipt in the chunk with the finish reason.
chunks = list(
    client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
assert len(final) == 1, chunks
usage = [c.usage for c in chunks if c.usage]
assert len(usage) == 1 and not chunks[-1].choices, chunks[-1]
svouch = final[0].model_extra["vouch"]
save("stream-receipt", svouch["receipt"])
save(
    "stream-response",
    {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": final[0].choices[0].finish_reason}],
        "usage": usage[0].model_dump(),
        "vouch": svouch,
    },
)
summary["stream"] = {
    "text": text,
    "chunks": len(chunks),
    "usage": usage[0].model_dump(),
    "logits_digest": svouch["logits_digest"],
    "receipt_id": svouch["receipt_id"],
}

# A legacy completion with logprobs.
comp = client.completions.create(model=model, prompt="The capital of Italy is", max_tokens=12, temperature=0, logprobs=2)
cvouch = comp.model_extra["vouch"]
assert len(comp.choices[0].logprobs.tokens) == comp.usage.completion_tokens
save("completion-receipt", cvouch["receipt"])
save("completion-response", comp.model_dump())
summary["completion"] = {"text": comp.choices[0].text, "finish_reason": comp.choices[0].finish_reason}

# Chat logprobs.
lp = client.chat.completions.create(
    model=model, messages=messages, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
)
content = lp.choices[0].logprobs.content
assert len(content) == 4 and all(len(c.top_logprobs) == 2 for c in content), content
assert all(c.top_logprobs[0].logprob >= c.top_logprobs[1].logprob for c in content)

# Seeded sampling is reproducible.
sampled = [
    client.chat.completions.create(model=model, messages=messages, max_tokens=16, temperature=0.9, seed=7)
    .choices[0]
    .message.content
    for _ in range(2)
]
assert sampled[0] == sampled[1], sampled

# The model list.
ids = [m.id for m in client.models.list()]
assert any(i.startswith(model + "@") for i in ids), ids
summary["models"] = ids

# Errors arrive as the client's exceptions, OpenAI-shaped.
errors = {}
for name, kwargs in {
    "temperature": dict(temperature=-1),
    "n": dict(n=2),
    "max_tokens": dict(max_tokens=0),
}.items():
    try:
        client.chat.completions.create(model=model, messages=messages, **kwargs)
        sys.exit(f"{name}: no error")
    except openai.BadRequestError as e:
        errors[name] = {"status": e.status_code, "code": e.code, "param": e.param, "type": e.type}
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    sys.exit("unknown model: no error")
except openai.NotFoundError as e:
    errors["model"] = {"status": e.status_code, "code": e.code, "param": e.param, "type": e.type}
summary["errors"] = errors
print(json.dumps(summary))
