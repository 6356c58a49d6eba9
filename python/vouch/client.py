"""`Client`: a node's API over httpx's blocking client. `vouch.AsyncClient` has the same methods, async."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from . import _ops
from ._base import NodeUnreachableError, ProtocolError
from ._ops import Call, Inference, Op, Progress, Reply, Sleep
from .receipt import Receipt
from .verify import DocSource, ReceiptSource, Verification, verify

T = TypeVar("T")

DEFAULT_NODE = "http://127.0.0.1:7070"
CHUNK = 256 * 1024


def node_url(node: str | None) -> str:
    """The node to talk to: the argument, else `$VOUCH_NODE`, else the local default (as the CLI)."""
    return (node or os.environ.get("VOUCH_NODE") or DEFAULT_NODE).rstrip("/")


def http_options(node: str, api_key: str | None, timeout: float) -> dict[str, Any]:
    """The httpx client options both clients use."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return {"base_url": node, "headers": headers, "timeout": httpx.Timeout(timeout, connect=10.0)}


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class Client:
    """A Vouch node's API: models, inference with receipts, the ledger, transactions and verification.

    `node` defaults to `$VOUCH_NODE`, else http://127.0.0.1:7070. `api_key` is sent as a bearer token (nodes with
    `access = "api_keys"`). `timeout` bounds each request, zk proving included."""

    def __init__(self, node: str | None = None, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.node = node_url(node)
        self._http = httpx.Client(**http_options(self.node, api_key, timeout))
        self.models = Models(self)
        self.receipts = Receipts(self)
        self.ledger = Ledger(self)
        self.tx = Transactions(self)

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = op.send(None)
                else:
                    step = op.send(self._send(step))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _send(self, call: Call) -> Reply:
        try:
            if call.progress is not None:
                headers = {"accept": "application/x-ndjson"}
                with self._http.stream(call.method, call.path, json=call.json, headers=headers) as r:
                    if r.status_code >= 400:
                        return Reply(r.status_code, r.read())
                    for line in r.iter_lines():
                        if line.strip():
                            receipt = _ops.progress_event(line.encode(), call.progress)
                            if receipt is not None:
                                return Reply(200, json.dumps(receipt).encode())
                raise ProtocolError("the stream ended without a receipt")
            if call.download is not None:
                with self._http.stream(call.method, call.path) as r:
                    if r.status_code >= 400:
                        return Reply(r.status_code, r.read())
                    with call.download.open("wb") as f:
                        for chunk in r.iter_bytes(CHUNK):
                            f.write(chunk)
                return Reply(r.status_code, b"")
            content = _chunks(call.upload) if call.upload is not None else call.content
            r = self._http.request(
                call.method, call.path, params=call.params, json=call.json, content=content, headers=call.headers
            )
            return Reply(r.status_code, r.content)
        except httpx.TransportError as e:
            raise NodeUnreachableError(f"cannot reach node at {self.node}: {e!r}") from e

    def status(self) -> dict[str, Any]:
        """`GET /v1/node`: the node's id, version, engines, modes and ledger role."""
        return dict(self._run(_ops.get("/v1/node")))

    def infer(
        self,
        model: str,
        inputs: _ops.Inputs,
        *,
        mode: str = "signed",
        quorum: int | None = None,
        private_input: bool = False,
        account: str | os.PathLike[str] | None = None,
        fee_per_executor: int = 10,
        progress: Progress | None = None,
    ) -> Inference:
        """Runs `model` (NAME, NAME@VERSION or id) on `inputs`: a dict of arrays by input name, or one array for a
        one-input model. `mode` is signed, zk, quorum or tee. Quorum jobs are paid by `account`'s key file (default
        `$VOUCH_ACCOUNT`). `private_input` (zk) keeps the input out of the receipt: the result's `salt` opens the
        commitment. `progress` sees each layer proof of a zk inference."""
        return self._run(
            _ops.infer(
                model,
                inputs,
                mode=mode,
                quorum=quorum,
                private_input=private_input,
                account=account,
                fee_per_executor=fee_per_executor,
                progress=progress,
            )
        )

    def verify(self, receipt: ReceiptSource, *, online: bool = False, **kwargs: Any) -> Verification:
        """`vouch.verify`, with the anchor checked against this node when `online`."""
        return verify(receipt, node=self.node if online else None, **kwargs)


class Models:
    """The model hub."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def push(
        self,
        path: str | os.PathLike[str],
        *,
        name: str,
        version: str | None = None,
        description: str | None = None,
        zk: bool = False,
        calibration: str | os.PathLike[str] | list[Any] | None = None,
        force: bool = False,
        private_weights: bool = False,
        tolerance: float | tuple[float, float] | None = None,
        account: str | os.PathLike[str] | None = None,
        home: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """Uploads a model file as a new version of `name` and returns the version. `zk` also quantizes it for zk
        proofs with `calibration` (a JSON array of input documents or its file; `force` accepts a lossy
        quantization; `private_weights` keeps the weights on the node: the file is never served and every zk proof
        is a private-input proof against a commitment to the weights). `tolerance` is a float model's quorum
        agreement rule, ABS or (ABS, REL). The push is signed by `account`'s key file, else `$VOUCH_ACCOUNT`, else
        the local node's key in `home` (`$VOUCH_HOME`, ~/.vouch), else sent unsigned."""
        return self._c._run(
            _ops.push(
                path,
                name=name,
                version=version,
                description=description,
                zk=zk,
                calibration=calibration,
                force=force,
                private_weights=private_weights,
                tolerance=tolerance,
                account=account,
                home=home,
            )
        )

    def list(self) -> list[dict[str, Any]]:
        """Every repository with its versions."""
        return list(self._c._run(_ops.get("/v1/models"))["repos"])

    def get(self, reference: str) -> dict[str, Any]:
        """One version: NAME (the latest), NAME@VERSION or an id."""
        return dict(self._c._run(_ops.get(f"/v1/models/{_ops.ref(reference)}")))

    def pull(self, model_id: str, path: str | os.PathLike[str]) -> int:
        """Downloads a model's bytes to `path`, checked against the id; returns the size."""
        return self._c._run(_ops.pull(model_id, path))


class Receipts:
    """Receipts the node issued."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def get(self, id: str) -> Receipt:
        """A receipt by id."""
        return self._c._run(_ops.receipt(id))

    def wait(self, id: str, timeout: float = 60.0) -> Receipt:
        """A receipt once the ledger has anchored it."""
        return self._c._run(_ops.wait_receipt(id, timeout))


class Ledger:
    """The replicated ledger, as this node sees it."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def _get(self, path: str) -> dict[str, Any]:
        return dict(self._c._run(_ops.get(path)))

    def status(self) -> dict[str, Any]:
        """Chain id, height, state root, validators and the state store."""
        return self._get("/v1/ledger/status")

    def genesis(self) -> dict[str, Any]:
        """The chain spec (what `verify(genesis=...)` reads from a file)."""
        return self._get("/v1/ledger/genesis")

    def block(self, height: int) -> dict[str, Any]:
        """A finalized block with its transactions."""
        return self._get(f"/v1/ledger/blocks/{int(height)}")

    def transaction(self, id: str) -> dict[str, Any]:
        """A transaction's record: its block and result."""
        return self._get(f"/v1/ledger/txs/{_ops.ref(id)}")

    def nodes(self) -> list[dict[str, Any]]:
        """Registered nodes: operator, endpoint, engines, stake, unbonding, slashes and attestation."""
        return list(self._c._run(_ops.get("/v1/ledger/nodes")))

    def validators(self) -> dict[str, Any]:
        """Validator sets by epoch, and bonded validators."""
        return self._get("/v1/ledger/validators")

    def account(self, address: str) -> dict[str, Any]:
        """An account's balance and next nonce."""
        return self._get(f"/v1/ledger/accounts/{_ops.ref(address)}")

    def epochs(self) -> dict[str, Any]:
        """Every epoch link (`{"links": [...]}`): what `verify(epochs=...)` takes."""
        return self._c._run(_ops.epochs())


class Transactions:
    """Account transactions, signed here with the account's key file and its next nonce."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def _send(
        self, kind: dict[str, Any], account: str | os.PathLike[str], wait: bool, timeout: float
    ) -> dict[str, Any]:
        return self._c._run(_ops.send_tx(kind, account, wait, timeout))

    def transfer(self, to: str, amount: int, *, account: str | os.PathLike[str], wait: bool = False) -> dict[str, Any]:
        """Sends `amount` to the address `to`. Returns `{"id": ...}`, or with `wait` the ledger's record once in a
        block (a failed transaction raises `TxFailedError`)."""
        return self._send({"transfer": {"to": to, "amount": amount}}, account, wait, 60.0)

    def add_stake(
        self, node: str, amount: int, *, account: str | os.PathLike[str], wait: bool = False
    ) -> dict[str, Any]:
        """Stakes `amount` on a node (its id)."""
        return self._send({"add_stake": {"node": node, "amount": amount}}, account, wait, 60.0)

    def unbond(self, node: str, amount: int, *, account: str | os.PathLike[str], wait: bool = False) -> dict[str, Any]:
        """Starts unbonding `amount` of a node's stake (the node's operator only)."""
        return self._send({"unbond": {"node": node, "amount": amount}}, account, wait, 60.0)

    def bond_validator(
        self,
        node_key: str | os.PathLike[str],
        stake: int,
        *,
        p2p: str = "",
        account: str | os.PathLike[str],
        wait: bool = False,
    ) -> dict[str, Any]:
        """Bonds `stake` for the validator whose node key file is `node_key` (listening for peers at `p2p`)."""
        kind = {"bond_validator": {"node_key": os.fspath(node_key), "p2p": p2p, "stake": stake}}
        return self._send(kind, account, wait, 60.0)

    def unbond_validator(
        self, node_key: str | os.PathLike[str], *, account: str | os.PathLike[str], wait: bool = False
    ) -> dict[str, Any]:
        """Unbonds all of a validator's stake."""
        return self._send({"unbond_validator": {"node_key": os.fspath(node_key)}}, account, wait, 60.0)


__all__ = ["Client", "DocSource", "Inference"]
