"""The client's operations, written once without I/O.

Each operation is a generator: it yields what it needs done (`Call` an endpoint, `Sleep`) and receives the result
(a `Reply` or None). `vouch.Client` runs them with httpx's blocking client, `vouch.AsyncClient` with its async one,
so the two clients cannot differ in what they send or how they read the answers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from . import _native, _tensors
from ._base import ApiError, HashMismatchError, ProtocolError, TxFailedError, UsageError, VouchError
from ._errors import ERRORS
from .receipt import Receipt

T = TypeVar("T")

Progress = Callable[[dict[str, Any]], None]
"""Sees each progress event of a zk inference (`{"event": "progress", "layer", "done", "total", "rows"}`)."""


@dataclass(frozen=True)
class Call:
    """An HTTP request to the node."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    content: bytes | None = None
    upload: Path | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # The answer is an ndjson stream of progress events ending in a receipt or an error event.
    progress: Progress | None = None
    # The answer's body is written to this file.
    download: Path | None = None


@dataclass(frozen=True)
class Sleep:
    """A pause between polls."""

    seconds: float


@dataclass(frozen=True)
class Reply:
    """A node's answer: its status and body (empty for a download)."""

    status: int
    body: bytes


Op = Generator[Call | Sleep, Reply | None, T]


def error_from(status: int, body: bytes) -> VouchError:
    """The typed exception of an error answer: the class of its code, `ApiError` for a code this package does not
    know, code `http_error` for a body that is not the API's error document."""
    try:
        detail = json.loads(body)["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()[:200]
        return ApiError(text or f"HTTP {status}", code="http_error", status=status)
    cls = ERRORS.get(code, ApiError)
    return cls(message, code=code, status=status, details=detail.get("details"))


def progress_event(line: bytes, progress: Progress | None) -> Any:
    """One line of an ndjson inference stream: calls `progress` for a progress event and returns None; returns the
    receipt of a receipt event; raises the error of an error event."""
    try:
        ev = json.loads(line)
    except ValueError as e:
        raise ProtocolError(f"malformed progress line: {e}") from None
    match ev.get("event"):
        case "progress":
            if progress is not None:
                progress(ev)
            return None
        case "receipt":
            return ev["receipt"]
        case "error":
            raise error_from(int(ev.get("status", 500)), json.dumps({"error": ev.get("error")}).encode())
        case _:
            raise ProtocolError(f"unknown event {ev!r}")


def _json(reply: Reply | None) -> Any:
    assert reply is not None
    if reply.status >= 400:
        raise error_from(reply.status, reply.body)
    try:
        return json.loads(reply.body)
    except ValueError as e:
        raise ProtocolError(f"the node's answer is not JSON: {e}") from None


def get(path: str, params: Mapping[str, str] | None = None) -> Op[Any]:
    """`GET path`, the answer's JSON."""
    return _json((yield Call("GET", path, params=params)))


def post(path: str, body: Any) -> Op[Any]:
    """`POST path` with a JSON body, the answer's JSON."""
    return _json((yield Call("POST", path, json=body)))


def ref(s: str) -> str:
    """A path segment: a model name, NAME@VERSION or an id."""
    return quote(s, safe="@")


# Models.


def _key_file(account: str | os.PathLike[str] | None, home: str | os.PathLike[str] | None) -> Path | None:
    """The key that signs a push: the account key, `$VOUCH_ACCOUNT`, else the local node's key, else none (an
    unsigned push, taken only by a node configured with `unsigned_pushes`), as in `vouch model push`."""
    if account is not None:
        return Path(account)
    if os.environ.get("VOUCH_ACCOUNT"):
        return Path(os.environ["VOUCH_ACCOUNT"])
    local = Path(home or os.environ.get("VOUCH_HOME") or Path.home() / ".vouch") / "node.key"
    return local if local.exists() else None


def push(
    path: str | os.PathLike[str],
    *,
    name: str,
    version: str | None,
    description: str | None,
    zk: bool,
    calibration: str | os.PathLike[str] | list[Any] | None,
    force: bool,
    private_weights: bool,
    tolerance: float | tuple[float, float] | None,
    account: str | os.PathLike[str] | None,
    home: str | os.PathLike[str] | None,
) -> Op[dict[str, Any]]:
    """Uploads a model file as a new version of `name` (`vouch model push`)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: not a file")
    params: dict[str, str] = {}
    if version is not None:
        params["version"] = version
    if description is not None:
        params["description"] = description
    if zk:
        if calibration is None:
            raise UsageError("zk needs a calibration: a JSON array of input documents, or its file")
        docs = json.loads(Path(calibration).read_text()) if isinstance(calibration, str | os.PathLike) else calibration
        docs = [inputs_doc(d) for d in docs]
        cal = yield from post("/v1/calibrations", docs)
        params |= {"zk": "true", "calibration": str(cal["id"])}
        if force:
            params["force"] = "true"
        if private_weights:
            params["private_weights"] = "true"
    elif calibration is not None or force or private_weights:
        raise UsageError("calibration, force and private_weights are only used with zk=True")
    if tolerance is not None:
        abs_, rel = (tolerance, 0.0) if isinstance(tolerance, int | float) else tolerance
        if not (abs_ >= 0 and rel >= 0 and np.isfinite(abs_) and np.isfinite(rel)):
            raise UsageError(f"tolerance ({abs_}, {rel}): both parts are finite and non-negative")
        params |= {"tolerance_abs": repr(float(abs_)), "tolerance_rel": repr(float(rel))}
    headers = {"content-type": "application/octet-stream", "content-length": str(path.stat().st_size)}
    key = _key_file(account, home)
    if key is not None:
        model_id = _native.model_id_of_file(str(path))
        acct, sig = _native.sign_push(str(key), name, version, model_id)
        headers |= {"x-vouch-account": acct, "x-vouch-signature": sig}
    reply = yield Call(
        "POST", f"/v1/models/{quote(name, safe='')}/versions", params=params, upload=path, headers=headers
    )
    return dict(_json(reply))


def pull(model_id: str, out: str | os.PathLike[str]) -> Op[int]:
    """Downloads a model's bytes into `out`, checking them against the id; removes the file if they differ."""
    out = Path(out)
    reply = yield Call("GET", f"/v1/blobs/{ref(model_id)}", download=out)
    assert reply is not None
    if reply.status >= 400:
        out.unlink(missing_ok=True)
        raise error_from(reply.status, reply.body)
    actual = _native.model_id_of_file(str(out))
    if actual != model_id:
        out.unlink(missing_ok=True)
        raise HashMismatchError(
            f"downloaded bytes hash to {actual}, not the requested {model_id}; the file was removed"
        )
    return out.stat().st_size


# Inference.

Inputs = Mapping[str, npt.ArrayLike] | npt.ArrayLike


def inputs_doc(inputs: Any, names: list[str] | None = None) -> dict[str, Any]:
    """An input document from named arrays, or from one array for a model with one input (`names`)."""
    if isinstance(inputs, Mapping):
        return _tensors.input_doc(inputs)
    if names is None or len(names) != 1:
        raise UsageError(f"one array is the input of a one-input model; this model's inputs are {names}")
    return {names[0]: _tensors.encode(inputs)}


@dataclass(frozen=True)
class Inference:
    """The outputs of an inference and its receipt. `salt` opens a private input's commitment later
    (`vouch.verify(receipt, input=..., salt=...)`)."""

    outputs: dict[str, npt.NDArray[Any]]
    receipt: Receipt
    salt: str | None = None


def infer(
    model: str,
    inputs: Any,
    *,
    mode: str,
    quorum: int | None,
    private_input: bool,
    account: str | os.PathLike[str] | None,
    fee_per_executor: int,
    progress: Progress | None,
) -> Op[Inference]:
    """Runs a model (`vouch infer`)."""
    if private_input and mode != "zk":
        raise UsageError("private_input is for mode='zk'")
    names = None
    if not isinstance(inputs, Mapping):
        # One array: its name comes from the model's signature, which this node must have.
        reply = yield Call("GET", f"/v1/models/{ref(model)}")
        assert reply is not None
        if reply.status == 404:
            raise UsageError(
                f"this node does not have model {model!r} yet, so one array cannot be named: pass the inputs by name "
                "({name: array}); the node then fetches the model from a peer to run it"
            )
        names = [i["name"] for i in _json(reply).get("inputs", [])]
    doc = inputs_doc(inputs, names)
    body: dict[str, Any] = {"model": model, "inputs": doc, "mode": mode}
    if quorum is not None:
        body["quorum"] = quorum
    if mode == "quorum":
        key = account if account is not None else os.environ.get("VOUCH_ACCOUNT")
        if key is None:
            raise UsageError("quorum mode is paid by the requester: pass account=KEY_FILE (or set VOUCH_ACCOUNT)")
        body["job_tx"] = yield from _job_tx(Path(key), model, doc, quorum or 3, fee_per_executor)
    salt = _native.random_salt() if private_input else None
    if salt is not None:
        body["private_input"] = {"salt": salt}
    if mode == "zk":
        reply = yield Call("POST", "/v1/infer", json=body, progress=progress or (lambda _: None))
        assert reply is not None
        receipt_json = json.loads(reply.body)
    else:
        receipt_json = yield from post("/v1/infer", body)
    text = json.dumps(receipt_json, indent=2)
    receipt = Receipt.from_json(text)
    if salt is not None:
        # The node must have proven this input: its commitment, with the salt drawn here, is the receipt's.
        try:
            _native.check_private_opening(text, json.dumps(doc), salt)
        except ValueError as e:
            raise ProtocolError(f"the node's receipt is not about your input: {e}") from None
    return Inference(outputs=receipt.outputs, receipt=receipt, salt=salt)


def _job_tx(key: Path, model: str, doc: dict[str, Any], quorum: int, fee_per_executor: int) -> Op[str]:
    """The requester's signed `SubmitJob`: prepared by the node, checked and signed here."""
    address = _native.key_address(str(key))
    prepared = yield from post(
        "/v1/jobs/prepare",
        {"model": model, "inputs": doc, "quorum": quorum, "fee_per_executor": fee_per_executor, "from": address},
    )
    genesis = yield from get("/v1/ledger/genesis")
    min_fee = int(genesis["params"].get("min_fee", 1))
    try:
        return _native.sign_job(str(key), prepared["tx"], prepared["id"], quorum, fee_per_executor, min_fee)
    except ValueError as e:
        raise ProtocolError(str(e)) from None


# Receipts.


def receipt(id: str) -> Op[Receipt]:
    """A receipt by id."""
    reply = yield Call("GET", f"/v1/receipts/{ref(id)}")
    _json(reply)
    assert reply is not None
    return Receipt.from_json(reply.body.decode())


def wait_receipt(id: str, timeout: float) -> Op[Receipt]:
    """A receipt once the ledger anchored it (polled every 200 ms, as `vouch receipt show --wait`)."""
    deadline = time.monotonic() + timeout
    while True:
        r = yield from receipt(id)
        if r.anchor is not None:
            return r
        if time.monotonic() > deadline:
            raise VouchError(f"receipt {id} not settled within {timeout} s", code="timeout")
        yield Sleep(0.2)


# Ledger.


def epochs() -> Op[dict[str, Any]]:
    """Every epoch link, page by page, as one `{"links": [...]}` document (what `verify(epochs=...)` takes)."""
    links: list[Any] = []
    start = 0
    while True:
        page = yield from get("/v1/ledger/epochs", {"from": str(start)})
        links += page.get("links", [])
        nxt = page.get("next")
        if not isinstance(nxt, int) or nxt <= start:
            return {"links": links}
        start = nxt


def send_tx(kind: dict[str, Any], account: str | os.PathLike[str], wait: bool, timeout: float) -> Op[dict[str, Any]]:
    """Signs a transaction from `account`'s key file with its next nonce and the chain's minimum fee, submits it,
    and returns `{"id": ...}`; with `wait`, the ledger's record once it is in a block (raises `TxFailedError` if it
    failed)."""
    key = str(account)
    address = _native.key_address(key)
    status = yield from get("/v1/ledger/status")
    genesis = yield from get("/v1/ledger/genesis")
    acct = yield from get(f"/v1/ledger/accounts/{address}")
    fee = int(genesis["params"].get("min_fee", 1))
    signed = _native.sign_tx(key, status["chain_id"], int(acct["next_nonce"]), fee, json.dumps(kind))
    reply = yield Call(
        "POST", "/v1/ledger/txs", content=bytes.fromhex(signed), headers={"content-type": "application/octet-stream"}
    )
    tx_id = str(_json(reply)["id"])
    if not wait:
        return {"id": tx_id}
    deadline = time.monotonic() + timeout
    while True:
        reply = yield Call("GET", f"/v1/ledger/txs/{tx_id}")
        assert reply is not None
        if reply.status == 404 and time.monotonic() < deadline:
            yield Sleep(0.1)
            continue
        record = _json(reply)
        if record.get("result", {}).get("ok") is True:
            return dict(record)
        raise TxFailedError(f"transaction {tx_id} failed: {record.get('result', {}).get('error', '?')}", record)
