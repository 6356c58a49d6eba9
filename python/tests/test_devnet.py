"""A real 3-node devnet with epochs: quorum inference (the ledger assigns the executors, each runs and signs, and
the receipt settles) and validator bonding; with both clients."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import maybe, vouch_bin
from testmodels import bench, input_of

import vouch

pytestmark = pytest.mark.anyio
NODES = 3


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], Path]]:
    home = tmp_path_factory.mktemp("devnet") / "net"
    # Below the ephemeral range (32768+), away from the Rust tests' ports (21000-29000, run before these).
    base = 23000 + (os.getpid() % 1000) * 8
    proc = subprocess.Popen(
        # Epochs long enough that no validator set changes while the tests run.
        [
            vouch_bin(),
            "devnet",
            "--nodes",
            str(NODES),
            "--epoch-length",
            "10000",
            "--base-port",
            str(base),
            "--home",
            str(home),
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "VOUCH_LOG": "warn"},
    )
    urls = [f"http://127.0.0.1:{base + i}" for i in range(NODES)]

    def ready() -> bool:
        try:
            heights = [httpx.get(f"{u}/v1/ledger/status").json()["height"] for u in urls]
            nodes = httpx.get(f"{urls[0]}/v1/ledger/nodes").json()
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return min(heights) >= 2 and len(nodes) == NODES and len({n["engine"] for n in nodes}) == 1

    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, "the devnet exited"
        assert time.monotonic() < deadline, "the devnet did not come up within 120 s"
        time.sleep(0.5)
    yield urls, home
    # SIGTERM stops the devnet and its nodes: none is left answering.
    proc.terminate()
    assert proc.wait(timeout=60) == 0
    for u in urls:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{u}/v1/health", timeout=2)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_quorum_of_three_verifies_and_settles(devnet: tuple[list[str], Path], kind: str) -> None:
    urls, home = devnet
    key = home / "dev-account.key"
    client: vouch.Client | vouch.AsyncClient = vouch.Client(urls[1]) if kind == "sync" else vouch.AsyncClient(urls[1])
    name = f"q-{kind}"
    await maybe(client.models.push(bench("mlp_small"), name=name, account=key))
    _, x = input_of(bench("mlp_small"), 3)
    r = await maybe(client.infer(name, x, mode="quorum", quorum=NODES, account=key))
    assert r.receipt.mode == "quorum" and len(set(r.receipt.executors)) == NODES
    v = vouch.verify(r.receipt)
    assert v.ok and sorted(v.executors) == sorted(r.receipt.executors)
    # Every executor computed the same output: the one the receipt carries.
    assert np.isfinite(r.outputs["y"]).all()
    anchored = await maybe(client.receipts.wait(r.receipt.id, timeout=90))
    v = vouch.verify(anchored, genesis=home / "genesis.json")
    assert v.ok and v.anchor is not None
    # A quorum job is paid: without an account it is refused before any request.
    with pytest.raises(vouch.UsageError):
        await maybe(client.infer(name, x, mode="quorum", quorum=NODES))


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_validator_bond_and_unbond(devnet: tuple[list[str], Path], kind: str, tmp_path: Path) -> None:
    urls, home = devnet
    account = home / "dev-account.key"
    client: vouch.Client | vouch.AsyncClient = vouch.Client(urls[2]) if kind == "sync" else vouch.AsyncClient(urls[2])
    node_key = vouch.Key.create(tmp_path / "validator.key")
    p2p = f"127.0.0.1:{9000 + (kind == 'async')}"
    record = await maybe(client.tx.bond_validator(node_key.path, 20000, p2p=p2p, account=account, wait=True))
    assert record["result"]["ok"] is True
    bonded = [b for b in (await maybe(client.ledger.validators()))["bonded"] if b["p2p"] == p2p]
    assert len(bonded) == 1 and bonded[0]["stake"] == 20000
    record = await maybe(client.tx.unbond_validator(node_key.path, account=account, wait=True))
    assert record["result"]["ok"] is True
