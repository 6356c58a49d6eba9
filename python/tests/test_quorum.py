"""Quorum inference on a real 3-node devnet: the ledger assigns the executors, each runs and signs, and the
receipt settles; with both clients."""

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
        [vouch_bin(), "devnet", "--nodes", str(NODES), "--base-port", str(base), "--home", str(home)],
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
    proc.terminate()
    proc.wait(timeout=60)


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
