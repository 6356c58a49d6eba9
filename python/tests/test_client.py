"""Every client method against a real node process, run with `vouch.Client` and again with `vouch.AsyncClient`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from conftest import Node, maybe
from testmodels import BENCH_MODELS, bench, identity_model, input_of, reweighted, sample

import vouch
from vouch import _native
from vouch.errors import (
    BlockNotFoundError,
    DtypeMismatchError,
    EmptyUploadError,
    InsufficientBalanceError,
    InvalidModeError,
    InvalidModelError,
    InvalidNameError,
    InvalidQuorumError,
    InvalidVersionError,
    MissingInputError,
    ModelNotFoundError,
    ModelPrivateError,
    NameOwnedError,
    NotZkModelError,
    RateLimitedError,
    ReceiptNotFoundError,
    ShapeMismatchError,
    TeeUnavailableError,
    TxNotFoundError,
    UnauthorizedError,
    UnknownInputError,
    VersionExistsError,
)

pytestmark = pytest.mark.anyio

Client = vouch.Client | vouch.AsyncClient


def unique(prefix: str) -> str:
    """A repository name no other test (or the other client's run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_status(client: Client, node: Node) -> None:
    s = await maybe(client.status())
    assert s["node_id"] == _native.key_address(str(node.home / "node.key"))


async def test_push_list_get_pull(client: Client, tmp_path: Path) -> None:
    name = unique("mlp")
    path = bench("mlp_small")
    v = await maybe(
        client.models.push(path, name=name, version="1.0", description="a small MLP", tolerance=(1e-4, 0.0))
    )
    assert v["id"] == _native.model_id_of_file(str(path))
    assert v["name"] == name and v["version"] == "1.0" and v["description"] == "a small MLP"
    assert v["agreement"] == {"kind": "tolerance", "abs": 1e-4, "rel": 0.0}
    repos = await maybe(client.models.list())
    assert [r["versions"][0]["id"] for r in repos if r["name"] == name] == [v["id"]]
    for reference in [name, f"{name}@1.0", v["id"]]:
        assert (await maybe(client.models.get(reference)))["id"] == v["id"]
    out = tmp_path / "pulled.onnx"
    assert await maybe(client.models.pull(v["id"], out)) == path.stat().st_size
    assert out.read_bytes() == path.read_bytes()
    # The next version is numbered by the node.
    v2 = await maybe(client.models.push(bench("mlp_mnist"), name=name))
    assert v2["version"] == "1.1"


@pytest.mark.parametrize("model", BENCH_MODELS)
async def test_outputs_equal_onnxruntime(client: Client, model: str) -> None:
    name = unique(model)
    await maybe(client.models.push(bench(model), name=name))
    sess = ort.InferenceSession(str(bench(model)), providers=["CPUExecutionProvider"])
    for seed in range(3):
        input_name, x = input_of(bench(model), seed)
        expected = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {input_name: x}), strict=True))
        # One array for a one-input model, or the dict of named arrays.
        r = await maybe(client.infer(name, x if seed % 2 else {input_name: x}))
        assert set(r.outputs) == set(expected)
        for k, want in expected.items():
            assert r.outputs[k].dtype == want.dtype and r.outputs[k].shape == want.shape
            np.testing.assert_allclose(r.outputs[k], want, atol=1e-4, rtol=0)
        assert r.receipt.outputs.keys() == r.outputs.keys()
        assert np.array_equal(r.receipt.inputs[input_name], x) if r.receipt.inputs else False
        assert vouch.verify(r.receipt, model=bench(model)).ok


@pytest.mark.parametrize(
    "dtype", ["f32", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "bool", "string"]
)
async def test_every_dtype_round_trips_through_the_node(client: Client, dtype: str, tmp_path: Path) -> None:
    name = unique(f"id-{dtype}")
    path = identity_model(dtype, tmp_path / f"{dtype}.onnx")
    await maybe(client.models.push(path, name=name))
    x = sample(dtype)
    r = await maybe(client.infer(name, {"x": x}))
    y = r.outputs["y"]
    assert y.shape == x.shape
    if dtype == "string":
        assert [str(v) for v in y.ravel()] == [str(v) for v in x.ravel()]
    else:
        assert y.dtype == x.dtype and y.tobytes() == x.tobytes()
    assert vouch.verify(r.receipt).ok


def calibration(model: str, n: int) -> list[dict[str, Any]]:
    return [dict([input_of(bench(model), 100 + i)]) for i in range(n)]


async def test_zk_public_and_private_input(client: Client) -> None:
    name = unique("zk")
    v = await maybe(client.models.push(bench("mlp_small"), name=name, zk=True, calibration=calibration("mlp_small", 8)))
    assert v["zk"]["commitment"]
    input_name, x = input_of(bench("mlp_small"), 5)
    events: list[dict[str, Any]] = []
    r = await maybe(client.infer(name, x, mode="zk", progress=events.append))
    assert events and events[-1]["done"] == events[-1]["total"]
    ver = vouch.verify(r.receipt)
    assert ver.ok and ver.mode == "zk" and ver.zk_layers and ver.zk_layers > 0
    p = await maybe(client.infer(name, {input_name: x}, mode="zk", private_input=True))
    assert p.salt is not None and p.receipt.inputs is None
    opened = vouch.verify(p.receipt, input={input_name: x}, salt=p.salt)
    assert opened.ok and opened.input_opened and opened.private_input and opened.weights_commitment is None
    assert vouch.verify(p.receipt, input=x, salt=p.salt).ok
    wrong = vouch.verify(p.receipt, input=x + 1, salt=p.salt)
    assert not wrong.ok and wrong.reason is not None and "commitment" in wrong.reason


async def test_private_weights(client: Client, tmp_path: Path) -> None:
    name = unique("pw")
    path = reweighted("mlp_small", uuid.uuid4().int % 2**32, tmp_path / "pw.onnx")
    cal = calibration("mlp_small", 8)
    v = await maybe(client.models.push(path, name=name, zk=True, calibration=cal, private_weights=True))
    assert v["zk"]["hidden_weights"] is True and v["zk"].get("commitment") is None and v["zk"]["private_commitment"]
    _, x = input_of(bench("mlp_small"), 5)
    p = await maybe(client.infer(name, x, mode="zk", private_input=True))
    # Verified offline without the model file: the weights never left the node.
    ver = vouch.verify(p.receipt, input=x, salt=p.salt)
    assert ver.ok and ver.private_input and ver.input_opened
    assert ver.weights_commitment is not None and ver.weights_commitment == v["zk"]["weights_commitment"]
    assert f"weights private, committed as {ver.weights_commitment}" in str(ver)
    # The file is not served, and a zk proof needs a private input.
    out = tmp_path / "pulled.onnx"
    with pytest.raises(ModelPrivateError) as e:
        await maybe(client.models.pull(v["id"], out))
    assert e.value.status == 403 and not out.exists()
    with pytest.raises(ModelPrivateError, match="private_input"):
        await maybe(client.infer(name, x, mode="zk"))
    # Another model of the same structure has another commitment.
    other = reweighted("mlp_small", uuid.uuid4().int % 2**32, tmp_path / "other.onnx")
    w = await maybe(client.models.push(other, name=unique("pw"), zk=True, calibration=cal, private_weights=True))
    assert w["zk"]["private_commitment"] != v["zk"]["private_commitment"]
    with pytest.raises(vouch.UsageError, match="private_weights are only used with zk=True"):
        await maybe(client.models.push(path, name=name, private_weights=True))


async def test_receipts_get_and_wait_for_the_anchor(client: Client, node: Node) -> None:
    name = unique("anch")
    await maybe(client.models.push(bench("mlp_small"), name=name))
    _, x = input_of(bench("mlp_small"), 2)
    r = await maybe(client.infer(name, x))
    got = await maybe(client.receipts.get(r.receipt.id))
    assert got.id == r.receipt.id
    anchored = await maybe(client.receipts.wait(r.receipt.id, timeout=60))
    assert anchored.anchor is not None
    v = vouch.verify(anchored, genesis=node.home / "genesis.json")
    assert v.ok and v.anchor is not None and v.anchor.height == anchored.anchor["height"]
    online = await maybe(client.verify(anchored, online=True))
    assert online.ok and online.anchor == v.anchor


async def test_ledger_views(client: Client, node: Node) -> None:
    status = await maybe(client.ledger.status())
    assert status["height"] >= 1 and len(status["chain_id"]) == 64
    genesis = await maybe(client.ledger.genesis())
    assert genesis["validators"][0]["node_id"] == _native.key_address(str(node.home / "node.key"))
    block = await maybe(client.ledger.block(1))
    assert block["height"] == 1
    nodes = await maybe(client.ledger.nodes())
    assert [n["node"] for n in nodes] == [genesis["validators"][0]["node_id"]]
    validators = await maybe(client.ledger.validators())
    assert validators["sets"]
    assert (await maybe(client.ledger.epochs())) == {"links": []}


async def test_keys_transfers_and_a_failed_transaction(client: Client, node: Node, tmp_path: Path) -> None:
    funded = node.home / "node.key"
    key = vouch.Key.create(tmp_path / "alice.key")
    assert key.address == vouch.Key.load(tmp_path / "alice.key").address
    with pytest.raises(vouch.UsageError, match="exists"):
        vouch.Key.create(tmp_path / "alice.key")
    record = await maybe(client.tx.transfer(key.address, 5000, account=funded, wait=True))
    assert record["result"]["ok"] is True
    tx = await maybe(client.ledger.transaction(record["id"]))
    assert tx["height"] == record["height"]
    acct = await maybe(client.ledger.account(key.address))
    assert acct["balance"] == 5000
    sent = await maybe(client.tx.transfer(_native.key_address(str(funded)), 10, account=key.path))
    assert set(sent) == {"id"}
    # A key with no funds cannot pay the fee: the node refuses the transaction.
    broke = vouch.Key.create(tmp_path / "broke.key")
    with pytest.raises(InsufficientBalanceError) as e:
        await maybe(client.tx.transfer(key.address, 1, account=broke.path))
    assert e.value.status == 400
    # Unbonding stake from a node this account does not operate fails in the block.
    node_id = _native.key_address(str(funded))
    with pytest.raises(vouch.TxFailedError) as failed:
        await maybe(client.tx.unbond(node_id, 1, account=key.path, wait=True))
    assert failed.value.record["result"]["ok"] is False


async def test_validator_bonding_fails_on_a_fixed_validator_set(client: Client, node: Node, tmp_path: Path) -> None:
    funded = node.home / "node.key"
    validator = vouch.Key.create(tmp_path / "validator.key")
    calls: list[Callable[[], Any]] = [
        lambda: client.tx.bond_validator(validator.path, 20000, p2p="127.0.0.1:9", account=funded, wait=True),
        lambda: client.tx.unbond_validator(validator.path, account=funded, wait=True),
    ]
    for call in calls:
        with pytest.raises(vouch.TxFailedError) as e:
            await maybe(call())
        assert e.value.record["result"]["error"] == "this chain's validator set is fixed at genesis (no epochs)"


async def test_stake_add_and_unbond(client: Client, node: Node) -> None:
    funded = node.home / "node.key"
    node_id = _native.key_address(str(funded))
    before = await maybe(client.ledger.nodes())
    stake = next(n["stake"] for n in before if n["node"] == node_id)
    await maybe(client.tx.add_stake(node_id, 2000, account=funded, wait=True))
    after = next(n for n in await maybe(client.ledger.nodes()) if n["node"] == node_id)
    assert after["stake"] == stake + 2000
    record = await maybe(client.tx.unbond(node_id, 1000, account=funded, wait=True))
    assert record["result"]["ok"] is True


def bad_push(tmp_path: Path, content: bytes) -> Path:
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    return p


async def test_node_errors_arrive_as_their_classes(client: Client, node: Node, tmp_path: Path) -> None:
    name = unique("err")
    stranger = vouch.Key.create(tmp_path / "stranger.key")
    await maybe(client.models.push(bench("mlp_small"), name=name, version="1.0"))
    input_name, x = input_of(bench("mlp_small"), 0)
    cases: list[tuple[type[vouch.ApiError], Any]] = [
        (ModelNotFoundError, lambda: client.infer(unique("missing"), {input_name: x})),
        (ShapeMismatchError, lambda: client.infer(name, {input_name: x[..., :3]})),
        (DtypeMismatchError, lambda: client.infer(name, {input_name: x.astype(np.int32)})),
        (MissingInputError, lambda: client.infer(name, {})),
        (UnknownInputError, lambda: client.infer(name, {input_name: x, "extra": x})),
        (InvalidModeError, lambda: client.infer(name, {input_name: x}, mode="magic")),
        (NotZkModelError, lambda: client.infer(name, {input_name: x}, mode="zk")),
        (VersionExistsError, lambda: client.models.push(bench("mlp_mnist"), name=name, version="1.0")),
        (InvalidVersionError, lambda: client.models.push(bench("mlp_small"), name=name, version="one")),
        (InvalidNameError, lambda: client.models.push(bench("mlp_small"), name="no spaces allowed")),
        (InvalidModelError, lambda: client.models.push(bad_push(tmp_path, b"not onnx"), name=unique("bad"))),
        (EmptyUploadError, lambda: client.models.push(bad_push(tmp_path, b""), name=unique("empty"))),
        (ReceiptNotFoundError, lambda: client.receipts.get("00" * 32)),
        (TeeUnavailableError, lambda: client.infer(name, {input_name: x}, mode="tee")),
        (InvalidQuorumError, lambda: client.infer(name, x, mode="quorum", quorum=1, account=node.home / "node.key")),
        (NameOwnedError, lambda: client.models.push(bench("mlp_mnist"), name=name, account=stranger.path)),
        (BlockNotFoundError, lambda: client.ledger.block(10**12)),
        (TxNotFoundError, lambda: client.ledger.transaction("00" * 32)),
    ]
    for cls, call in cases:
        with pytest.raises(cls) as e:
            await maybe(call())
        assert e.value.code == cls.code and e.value.status is not None and 400 <= e.value.status < 500, cls


@pytest.fixture
def keyed_node(tmp_path: Path) -> Iterator[Node]:
    """A node that serves API key holders only, with a quota of one receipt per window."""
    config = 'access = "api_keys"\n[[api_keys]]\nname = "alice"\nkey = "alice-secret"\n[quotas]\nreceipts = 1\n'
    n = Node(tmp_path / "keyed", config=config)
    yield n
    n.stop()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_api_keys_and_quotas(keyed_node: Node, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCH_HOME", str(keyed_node.home))

    def make(api_key: str | None) -> Client:
        cls = vouch.Client if kind == "sync" else vouch.AsyncClient
        return cls(keyed_node.url, api_key=api_key)

    name = unique("keyed")
    for key in [None, "wrong-secret"]:
        with pytest.raises(UnauthorizedError) as e:
            await maybe(make(key).models.push(bench("mlp_small"), name=name))
        assert e.value.status == 401
    alice = make("alice-secret")
    await maybe(alice.models.push(bench("mlp_small"), name=name))
    _, x = input_of(bench("mlp_small"), 4)
    # Reads need no key; work does, and alice's quota is one receipt.
    assert (await maybe(make(None).models.get(name)))["name"] == name
    assert vouch.verify((await maybe(alice.infer(name, x))).receipt).ok
    with pytest.raises(RateLimitedError) as limited:
        await maybe(alice.infer(name, x))
    assert limited.value.status == 429


async def test_usage_errors_are_raised_before_any_request(client: Client) -> None:
    with pytest.raises(vouch.UsageError, match="private_input is for mode='zk'"):
        await maybe(client.infer("m", {"x": np.zeros(1, np.float32)}, private_input=True))
    with pytest.raises(vouch.UsageError, match="zk needs a calibration"):
        await maybe(client.models.push(bench("mlp_small"), name="m", zk=True))
    with pytest.raises(vouch.UsageError, match="tolerance"):
        await maybe(client.models.push(bench("mlp_small"), name="m", tolerance=-1.0))
    with pytest.raises(vouch.UsageError, match="quorum mode is paid by the requester"):
        await maybe(client.infer("m", {"x": np.zeros(1, np.float32)}, mode="quorum"))
    with pytest.raises(vouch.UsageError, match="pass the inputs by name"):
        await maybe(client.infer(unique("absent"), np.zeros(1, np.float32)))
    with pytest.raises(TypeError, match="no Vouch tensor type"):
        await maybe(client.infer("m", {"x": np.zeros(1, np.float16)}))
