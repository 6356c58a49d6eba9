"""`AsyncClient`: `vouch.Client`'s methods over httpx's async client. Both run the same operations (`_ops`), so
they send the same requests and read the answers the same way; see `Client` for each method's documentation."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from . import _ops
from ._base import NodeUnreachableError, ProtocolError
from ._ops import Call, Inference, Op, Progress, Reply, Sleep
from .client import CHUNK, http_options, node_url
from .receipt import Receipt
from .verify import ReceiptSource, Verification, verify

T = TypeVar("T")


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class AsyncClient:
    """`vouch.Client`, async: the same methods, awaited."""

    def __init__(self, node: str | None = None, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.node = node_url(node)
        self._http = httpx.AsyncClient(**http_options(self.node, api_key, timeout))
        self.models = AsyncModels(self)
        self.receipts = AsyncReceipts(self)
        self.ledger = AsyncLedger(self)
        self.tx = AsyncTransactions(self)

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _run(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    step = op.send(None)
                else:
                    step = op.send(await self._send(step))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _send(self, call: Call) -> Reply:
        try:
            if call.progress is not None:
                headers = {"accept": "application/x-ndjson"}
                async with self._http.stream(call.method, call.path, json=call.json, headers=headers) as r:
                    if r.status_code >= 400:
                        return Reply(r.status_code, await r.aread())
                    async for line in r.aiter_lines():
                        if line.strip():
                            receipt = _ops.progress_event(line.encode(), call.progress)
                            if receipt is not None:
                                return Reply(200, json.dumps(receipt).encode())
                raise ProtocolError("the stream ended without a receipt")
            if call.download is not None:
                async with self._http.stream(call.method, call.path) as r:
                    if r.status_code >= 400:
                        return Reply(r.status_code, await r.aread())
                    with call.download.open("wb") as f:
                        async for chunk in r.aiter_bytes(CHUNK):
                            f.write(chunk)
                return Reply(r.status_code, b"")
            content = _chunks(call.upload) if call.upload is not None else call.content
            r = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, content=content, headers=call.headers
            )
            return Reply(r.status_code, r.content)
        except httpx.TransportError as e:
            raise NodeUnreachableError(f"cannot reach node at {self.node}: {e!r}") from e

    async def status(self) -> dict[str, Any]:
        """`Client.status`."""
        return dict(await self._run(_ops.get("/v1/node")))

    async def infer(
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
        """`Client.infer`."""
        return await self._run(
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

    async def verify(self, receipt: ReceiptSource, *, online: bool = False, **kwargs: Any) -> Verification:
        """`Client.verify`, in a worker thread."""
        call = functools.partial(verify, receipt, node=self.node if online else None, **kwargs)
        return await anyio.to_thread.run_sync(call)


class AsyncModels:
    """`Client.models`, async."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def push(
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
        """`Client.models.push`."""
        return await self._c._run(
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

    async def list(self) -> list[dict[str, Any]]:
        """`Client.models.list`."""
        return list((await self._c._run(_ops.get("/v1/models")))["repos"])

    async def get(self, reference: str) -> dict[str, Any]:
        """`Client.models.get`."""
        return dict(await self._c._run(_ops.get(f"/v1/models/{_ops.ref(reference)}")))

    async def pull(self, model_id: str, path: str | os.PathLike[str]) -> int:
        """`Client.models.pull`."""
        return await self._c._run(_ops.pull(model_id, path))


class AsyncReceipts:
    """`Client.receipts`, async."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def get(self, id: str) -> Receipt:
        """`Client.receipts.get`."""
        return await self._c._run(_ops.receipt(id))

    async def wait(self, id: str, timeout: float = 60.0) -> Receipt:
        """`Client.receipts.wait`."""
        return await self._c._run(_ops.wait_receipt(id, timeout))


class AsyncLedger:
    """`Client.ledger`, async."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def _get(self, path: str) -> dict[str, Any]:
        return dict(await self._c._run(_ops.get(path)))

    async def status(self) -> dict[str, Any]:
        """`Client.ledger.status`."""
        return await self._get("/v1/ledger/status")

    async def genesis(self) -> dict[str, Any]:
        """`Client.ledger.genesis`."""
        return await self._get("/v1/ledger/genesis")

    async def block(self, height: int) -> dict[str, Any]:
        """`Client.ledger.block`."""
        return await self._get(f"/v1/ledger/blocks/{int(height)}")

    async def transaction(self, id: str) -> dict[str, Any]:
        """`Client.ledger.transaction`."""
        return await self._get(f"/v1/ledger/txs/{_ops.ref(id)}")

    async def nodes(self) -> list[dict[str, Any]]:
        """`Client.ledger.nodes`."""
        return list(await self._c._run(_ops.get("/v1/ledger/nodes")))

    async def validators(self) -> dict[str, Any]:
        """`Client.ledger.validators`."""
        return await self._get("/v1/ledger/validators")

    async def account(self, address: str) -> dict[str, Any]:
        """`Client.ledger.account`."""
        return await self._get(f"/v1/ledger/accounts/{_ops.ref(address)}")

    async def epochs(self) -> dict[str, Any]:
        """`Client.ledger.epochs`."""
        return await self._c._run(_ops.epochs())


class AsyncTransactions:
    """`Client.tx`, async."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def _send(self, kind: dict[str, Any], account: str | os.PathLike[str], wait: bool) -> dict[str, Any]:
        return await self._c._run(_ops.send_tx(kind, account, wait, 60.0))

    async def transfer(
        self, to: str, amount: int, *, account: str | os.PathLike[str], wait: bool = False
    ) -> dict[str, Any]:
        """`Client.tx.transfer`."""
        return await self._send({"transfer": {"to": to, "amount": amount}}, account, wait)

    async def add_stake(
        self, node: str, amount: int, *, account: str | os.PathLike[str], wait: bool = False
    ) -> dict[str, Any]:
        """`Client.tx.add_stake`."""
        return await self._send({"add_stake": {"node": node, "amount": amount}}, account, wait)

    async def unbond(
        self, node: str, amount: int, *, account: str | os.PathLike[str], wait: bool = False
    ) -> dict[str, Any]:
        """`Client.tx.unbond`."""
        return await self._send({"unbond": {"node": node, "amount": amount}}, account, wait)

    async def bond_validator(
        self,
        node_key: str | os.PathLike[str],
        stake: int,
        *,
        p2p: str = "",
        account: str | os.PathLike[str],
        wait: bool = False,
    ) -> dict[str, Any]:
        """`Client.tx.bond_validator`."""
        kind = {"bond_validator": {"node_key": os.fspath(node_key), "p2p": p2p, "stake": stake}}
        return await self._send(kind, account, wait)

    async def unbond_validator(
        self, node_key: str | os.PathLike[str], *, account: str | os.PathLike[str], wait: bool = False
    ) -> dict[str, Any]:
        """`Client.tx.unbond_validator`."""
        return await self._send({"unbond_validator": {"node_key": os.fspath(node_key)}}, account, wait)
