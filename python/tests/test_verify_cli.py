"""`vouch.verify` and `vouch verify` on the same files: the same verdict, the same reason, the same report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Node
from testmodels import bench, input_of

import vouch

Case = tuple[str, Path, dict[str, Any], bool]


def cli_flags(opts: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for k, v in opts.items():
        flags += [f"--{k.replace('_', '-')}", str(v)]
    return flags


@pytest.fixture(scope="module")
def files(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Case]]:
    """Receipts of each kind written to files, with the options to check them, and tampered copies."""
    d = tmp_path_factory.mktemp("receipts")
    c = vouch.Client(node.url)
    cases: list[Case] = []
    c.models.push(bench("mlp_small"), name="cli-signed", home=node.home)
    _, x = input_of(bench("mlp_small"), 9)
    signed = c.infer("cli-signed", x).receipt
    signed.dump(d / "signed.json")
    cases.append(("signed", d / "signed.json", {}, True))
    cases.append(("signed+model", d / "signed.json", {"model": bench("mlp_small")}, True))
    cases.append(("signed+other model", d / "signed.json", {"model": bench("mlp_mnist")}, False))

    anchored = c.receipts.wait(signed.id, timeout=60)
    anchored.dump(d / "anchored.json")
    cases.append(("anchored", d / "anchored.json", {"genesis": node.home / "genesis.json"}, True))
    not_anchored_spec = d / "other-genesis.json"
    spec = json.loads((node.home / "genesis.json").read_text())
    spec["params"]["min_fee"] = spec["params"]["min_fee"] + 1  # another chain: another chain id
    not_anchored_spec.write_text(json.dumps(spec))
    cases.append(("anchored, another chain", d / "anchored.json", {"genesis": not_anchored_spec}, False))
    cases.append(("signed, no anchor yet", d / "signed.json", {"genesis": node.home / "genesis.json"}, False))

    for model, n in [("mlp_small", 6), ("lenet_small", 4)]:
        cal = [dict([input_of(bench(model), 200 + i)]) for i in range(n)]
        c.models.push(bench(model), name=f"cli-zk-{model}", zk=True, calibration=cal, home=node.home)
        name, xz = input_of(bench(model), 11)
        c.infer(f"cli-zk-{model}", xz, mode="zk").receipt.dump(d / f"zk-{model}.json")
        cases.append((f"zk {model}", d / f"zk-{model}.json", {}, True))

    name, xp = input_of(bench("mlp_small"), 12)
    p = c.infer("cli-zk-mlp_small", {name: xp}, mode="zk", private_input=True)
    p.receipt.dump(d / "private.json")
    (d / "input.json").write_text(json.dumps({"inputs": {name: vouch._tensors.encode(xp)}}))
    (d / "other-input.json").write_text(json.dumps({"inputs": {name: vouch._tensors.encode(xp * 2)}}))
    assert p.salt is not None
    cases.append(("private", d / "private.json", {}, True))
    cases.append(("private opened", d / "private.json", {"input": d / "input.json", "salt": p.salt}, True))
    cases.append(("private, other input", d / "private.json", {"input": d / "other-input.json", "salt": p.salt}, False))
    cases.append(("private, other salt", d / "private.json", {"input": d / "input.json", "salt": "ab" * 32}, False))

    # Tampered copies: one thing changed each.
    def tamper(src: str, label: str, change: Any) -> None:
        doc = json.loads((d / src).read_text())
        change(doc)
        path = d / f"tampered-{label.replace(' ', '-')}.json"
        path.write_text(json.dumps(doc, indent=2))
        cases.append((f"tampered: {label}", path, {}, False))

    def flip_signature(doc: dict[str, Any]) -> None:
        sig = doc["evidence"][0]["signature"]
        doc["evidence"][0]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]

    def change_output(doc: dict[str, Any]) -> None:
        t = next(iter(doc["outputs"].values()))
        t["data"][0] = float(t["data"][0]) + 0.5

    tamper("signed.json", "signature", flip_signature)
    tamper("signed.json", "output", change_output)
    tamper("signed.json", "model", lambda doc: doc.update(model=vouch.Receipt.load(d / "zk-lenet_small.json").model))
    tamper("signed.json", "mode", lambda doc: doc.update(mode="zk"))
    tamper("signed.json", "id", lambda doc: doc.update(id="ab" * 32))
    tamper("signed.json", "no evidence", lambda doc: doc.update(evidence=[]))
    tamper("zk-mlp_small.json", "zk output", change_output)
    tamper("private.json", "private output", change_output)

    def shift_anchor(doc: dict[str, Any]) -> None:
        doc["anchor"]["height"] += 1

    doc = json.loads((d / "anchored.json").read_text())
    shift_anchor(doc)
    (d / "tampered-anchor.json").write_text(json.dumps(doc, indent=2))
    cases.append(
        ("tampered: anchor height", d / "tampered-anchor.json", {"genesis": node.home / "genesis.json"}, False)
    )
    (d / "garbage.json").write_text('{"format": 1, "id": 3')
    cases.append(("garbage", d / "garbage.json", {}, False))
    c.close()
    yield cases


def test_python_and_the_cli_agree_on_every_file(node: Node, files: list[Case]) -> None:
    for label, path, opts, expect_ok in files:
        cli_json = node.cli("--json", "verify", str(path), *cli_flags(opts))
        cli_text = node.cli("verify", str(path), *cli_flags(opts))
        assert cli_json.returncode in (0, 1), (label, cli_json.stderr)
        v = vouch.verify(Path(path), **opts)
        assert v.to_dict() == json.loads(cli_json.stdout), label
        assert v.ok == (cli_json.returncode == 0), label
        assert str(v) + "\n" == cli_text.stdout, label
        assert v.ok == expect_ok, (label, v.reason)
        assert (v.reason is None) == expect_ok, label


def test_usage_errors_are_errors_in_both(node: Node, files: list[Case], tmp_path: Path) -> None:
    signed = next(p for label, p, _, _ in files if label == "signed")
    not_json = tmp_path / "epochs.json"
    not_json.write_text("not json")
    cases: list[dict[str, Any]] = [
        {"model": tmp_path / "missing.onnx"},
        {"genesis": tmp_path / "missing.json"},
        {"genesis": node.home / "genesis.json", "epochs": not_json},
        {"tee_policy": tmp_path / "missing.toml"},
    ]
    for opts in cases:
        r = node.cli("verify", str(signed), *cli_flags(opts))
        assert r.returncode == 2, (opts, r.stdout)
        with pytest.raises(vouch.UsageError):
            vouch.verify(Path(signed), **opts)


def test_online_check_matches_the_cli(node: Node, files: list[Case]) -> None:
    anchored = next(p for label, p, _, _ in files if label == "anchored")
    r = node.cli("--json", "verify", str(anchored), "--online")
    v = vouch.verify(Path(anchored), node=node.url)
    assert v.ok and v.to_dict() == json.loads(r.stdout)
