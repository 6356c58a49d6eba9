"""`vouch.Receipt` against the golden receipt the Rust codec's tests pin, without a node."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

import vouch

GOLDEN = ROOT / "crates" / "vouch-receipt" / "tests" / "golden"


def test_golden_receipt_bytes_and_id() -> None:
    r = vouch.Receipt.load(GOLDEN / "receipt_v1.json")
    assert r.to_bytes().hex() == (GOLDEN / "receipt_v1.hex").read_text().strip()
    assert r.id == r.computed_id() == (GOLDEN / "receipt_v1.id").read_text().strip()
    assert r.mode == "signed" and r.model.startswith("bafkr4")
    assert len(r.executors) == 1 and r.evidence[0]["kind"] == "ed25519"


def test_from_bytes_gives_back_the_document() -> None:
    r = vouch.Receipt.load(GOLDEN / "receipt_v1.json")
    back = vouch.Receipt.from_bytes(r.to_bytes())
    assert back.to_dict() == r.to_dict()
    assert back.to_bytes() == r.to_bytes()


def test_fields_decode_as_arrays() -> None:
    r = vouch.Receipt.load(GOLDEN / "receipt_v1.json")
    doc = r.to_dict()
    for name, t in doc["outputs"].items():
        assert isinstance(r.outputs[name], np.ndarray)
        assert list(r.outputs[name].shape) == t["shape"]


def test_the_golden_receipt_verifies_and_a_changed_output_does_not() -> None:
    text = (GOLDEN / "receipt_v1.json").read_text()
    assert vouch.verify(text).ok
    doc = json.loads(text)
    name = next(iter(doc["outputs"]))
    doc["outputs"][name]["data"][0] = "tampered"
    v = vouch.verify(doc)
    assert not v.ok and not v
    assert v.reason is not None and "digest" in v.reason


def test_garbage_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="not a receipt"):
        vouch.Receipt.from_bytes(b"\x00garbage")
    v = vouch.verify("{not json")
    assert not v.ok and v.reason is not None
