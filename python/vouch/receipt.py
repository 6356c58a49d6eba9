"""`Receipt`: a receipt document, its canonical bytes and its fields."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy.typing as npt

from . import _native, _tensors


class Receipt:
    """A receipt as JSON text. The text is kept exactly as it was read, so that verifying it checks what was
    received (re-serialising could silently repair a tampered `id`); fields are read from it on demand."""

    def __init__(self, text: str) -> None:
        self._text = text
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("a receipt is a JSON object")
        self._doc: dict[str, Any] = doc

    @classmethod
    def from_json(cls, text: str | bytes) -> Receipt:
        """From JSON text."""
        return cls(text.decode() if isinstance(text, bytes) else text)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Receipt:
        """From a parsed JSON document."""
        return cls(json.dumps(doc, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Receipt:
        """From a receipt file (as `vouch infer -o` or `vouch receipt show` writes them)."""
        return cls(Path(path).read_text())

    @classmethod
    def from_bytes(cls, data: bytes) -> Receipt:
        """From canonical bytes."""
        return cls(_native.receipt_from_bytes(data))

    def to_json(self) -> str:
        """The JSON text, as read."""
        return self._text

    def to_dict(self) -> dict[str, Any]:
        """The parsed JSON document."""
        return json.loads(self._text)  # type: ignore[no-any-return]

    def to_bytes(self) -> bytes:
        """The canonical bytes: body, inputs, outputs, evidence and anchor in the wire encoding."""
        return _native.receipt_to_bytes(self._text)

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Writes the JSON text to a file."""
        Path(path).write_text(self._text if self._text.endswith("\n") else self._text + "\n")

    @property
    def id(self) -> str:
        """The id the receipt states (`verify` checks it against the body)."""
        return str(self._doc["id"])

    def computed_id(self) -> str:
        """The id the receipt's body hashes to."""
        return _native.receipt_id(self._text)

    @property
    def model(self) -> str:
        """The model id."""
        return str(self._doc["model"])

    @property
    def mode(self) -> str:
        """signed, quorum, zk or tee."""
        return str(self._doc["mode"])

    @property
    def engine(self) -> str:
        """The engine that ran the model, with its version."""
        return str(self._doc["engine"])

    @property
    def job(self) -> str:
        """The job id (hex)."""
        return str(self._doc["job"])

    @property
    def issued_at_ms(self) -> int:
        """When the receipt was issued (Unix ms)."""
        return int(self._doc["issued_at_ms"])

    @property
    def executors(self) -> list[str]:
        """The executors' public keys (hex)."""
        return [str(e) for e in self._doc.get("executors", [])]

    @property
    def evidence(self) -> list[dict[str, Any]]:
        """The evidence entries (signatures, proofs, attestations) as JSON."""
        return list(self._doc.get("evidence", []))

    @property
    def anchor(self) -> dict[str, Any] | None:
        """The ledger anchor, once settled."""
        a = self._doc.get("anchor")
        return dict(a) if a else None

    @cached_property
    def inputs(self) -> dict[str, npt.NDArray[Any]] | None:
        """The inputs, when the receipt discloses them (a private input is only committed to)."""
        m = self._doc.get("inputs")
        return None if m is None else _tensors.decode_map(m)

    @cached_property
    def outputs(self) -> dict[str, npt.NDArray[Any]]:
        """The outputs."""
        return _tensors.decode_map(self._doc.get("outputs", {}))

    def __repr__(self) -> str:
        return f"Receipt(id={self._doc.get('id')!r}, mode={self._doc.get('mode')!r}, model={self._doc.get('model')!r})"
