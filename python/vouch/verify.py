"""`verify`: the checks of `vouch verify`, run by the same Rust code."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt

from . import _native, _tensors
from ._base import UsageError
from .receipt import Receipt

ReceiptSource = Receipt | str | bytes | os.PathLike[str] | Mapping[str, Any]
"""A receipt: a `Receipt`, a path to its file, its JSON text (str or bytes) or its parsed document."""

DocSource = str | os.PathLike[str] | Mapping[str, Any]
"""A JSON document: a path to its file, or the parsed document."""


@dataclass(frozen=True)
class Anchor:
    """Where a receipt is settled on the ledger, as checked against the validator set."""

    height: int
    epoch: int
    batch_index: int | None = None
    batch_count: int | None = None


@dataclass(frozen=True)
class Verification:
    """The verdict on a receipt. `ok` (also its truth value) says whether every check passed; `reason` is the first
    that failed, worded as `vouch verify` words it. `str()` is the CLI's report, `to_dict()` its `--json` object."""

    ok: bool
    reason: str | None
    id: str | None
    mode: str | None
    model_id: str | None
    executors: list[str]
    model_checked: bool
    zk_layers: int | None
    private_input: str | None
    weights_commitment: str | None
    input_opened: bool
    anchor: Anchor | None
    tee: dict[str, Any] | None
    response_tokens: int | None
    _json: str
    _text: str

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return self._text

    def to_dict(self) -> dict[str, Any]:
        """The report as `vouch --json verify` prints it."""
        return json.loads(self._json)  # type: ignore[no-any-return]

    @classmethod
    def _from(cls, ok: bool, report: str, text: str) -> Verification:
        d = json.loads(report)
        batch = d.get("anchor_batch") or {}
        anchor = (
            Anchor(d["anchor_height"], d["anchor_epoch"], batch.get("index"), batch.get("count"))
            if d.get("anchor_height") is not None
            else None
        )
        return cls(
            ok=ok,
            reason=d.get("reason"),
            id=d.get("id"),
            mode=d.get("mode"),
            model_id=d.get("model"),
            executors=list(d.get("signers", [])),
            model_checked=bool(d.get("model_checked", False)),
            zk_layers=d.get("zk_layers"),
            private_input=d.get("private_input"),
            weights_commitment=d.get("weights_commitment"),
            input_opened=bool(d.get("input_opened", False)),
            anchor=anchor,
            tee=d.get("tee"),
            response_tokens=d.get("response_tokens"),
            _json=report,
            _text=text,
        )


def _receipt_text(receipt: ReceiptSource) -> str:
    if isinstance(receipt, Receipt):
        return receipt.to_json()
    if isinstance(receipt, os.PathLike):
        try:
            return Path(receipt).read_text()
        except OSError as e:
            raise UsageError(f"reading {receipt}: {e}") from e
    if isinstance(receipt, bytes):
        return receipt.decode()
    if isinstance(receipt, str):
        return receipt
    return json.dumps(receipt)


def _doc(d: DocSource | None) -> tuple[str | None, str | None]:
    """(path, JSON text) of a document argument."""
    if d is None:
        return None, None
    if isinstance(d, str | os.PathLike):
        return os.fspath(d), None
    return None, json.dumps(d)


def _input_doc(x: DocSource | npt.ArrayLike | None) -> tuple[str | None, str | None]:
    if x is None or isinstance(x, str | os.PathLike):
        return _doc(x)
    if isinstance(x, Mapping):
        return None, json.dumps(_tensors.input_doc(x))
    return None, json.dumps({"input": _tensors.encode(x)})


def _path(p: str | os.PathLike[str] | None) -> str | None:
    return None if p is None else os.fspath(p)


def verify(
    receipt: ReceiptSource,
    *,
    model: str | os.PathLike[str] | None = None,
    genesis: str | os.PathLike[str] | None = None,
    input: DocSource | npt.ArrayLike | None = None,
    salt: str | None = None,
    node: str | None = None,
    epochs: DocSource | None = None,
    response: DocSource | None = None,
    tee_measurements: Iterable[str] = (),
    tee_policy: str | os.PathLike[str] | None = None,
    allow_simulated_tee: bool = False,
) -> Verification:
    """Verifies a receipt with the checks and reasons of `vouch verify` (the same Rust code).

    - `model`: the model file; its bytes must be the receipt's model.
    - `genesis`: a chain spec (genesis.json): the ledger anchor is checked offline against its validators, and
      `epochs` (`{"links": [...]}`, from `Client.ledger.epochs()`) for anchors certified in a later epoch.
    - `node`: a node URL instead: the anchor is checked against its chain spec and its finalized block.
    - `input` and `salt`: open a private input's commitment (the input document, or one array).
    - `response`: an LLM answer (OpenAI response JSON) whose text must be the receipt's tokens (needs `model`, the
      GGUF, and a build with the `llm` feature).
    - `tee_measurements`, `tee_policy`, `allow_simulated_tee`: the TEE policy, as the CLI's flags.

    An invalid receipt is a `Verification` with `ok=False`; files that cannot be read and options that make no
    sense raise `UsageError`.
    """
    if (input is None) != (salt is None):
        raise UsageError("input and salt open a private input together: give both")
    if genesis is not None and node is not None:
        raise UsageError("genesis and node are exclusive: check the anchor offline or online")
    if epochs is not None and genesis is None:
        raise UsageError("epochs are checked from the genesis validator set: give genesis too")
    if response is not None and model is None:
        raise UsageError("checking a response needs the model file (its tokenizer)")
    text = _receipt_text(receipt)
    epochs_path, epochs_json = _doc(epochs)
    input_path, input_json = _input_doc(input)
    response_path, response_json = _doc(response)
    try:
        ok, report, lines = _native.verify(
            text,
            model=_path(model),
            genesis=_path(genesis),
            online=node,
            epochs_path=epochs_path,
            epochs_json=epochs_json,
            input_path=input_path,
            input_json=input_json,
            salt=salt,
            response_path=response_path,
            response_json=response_json,
            tee_measurements=list(tee_measurements),
            tee_policy=_path(tee_policy),
            allow_simulated_tee=allow_simulated_tee,
        )
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from e
    return Verification._from(ok, report, lines)


class Key:
    """An account key file (ed25519, 0600), as `vouch account new` writes them."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.address = _native.key_address(str(self.path))
            """The account address (hex public key)."""
        except OSError as e:
            raise UsageError(str(e)) from e

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Key:
        """Creates a new key file; refuses to overwrite one."""
        try:
            _native.key_create(str(path))
        except OSError as e:
            raise UsageError(str(e)) from e
        return cls(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Key:
        """An existing key file."""
        return cls(path)

    def __repr__(self) -> str:
        return f"Key({str(self.path)!r}, address={self.address!r})"
