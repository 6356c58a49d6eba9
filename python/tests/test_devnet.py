"""A real 3-node devnet with epochs: quorum inference (the ledger assigns the executors, each runs and signs, and
the receipt settles) and validator bonding; with both clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Devnet, maybe
from testmodels import bench, input_of

import vouch

pytestmark = pytest.mark.anyio
NODES = 3


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], Path]]:
    # Epochs long enough that no validator set changes while the tests run.
    net = Devnet(tmp_path_factory.mktemp("devnet"), NODES, 0, "--epoch-length", "10000")
    yield net.urls, net.home
    net.stop()


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
