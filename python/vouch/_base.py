"""The exception hierarchy. Every error the package raises is a `VouchError`."""

from __future__ import annotations

from typing import Any


class VouchError(Exception):
    """An error from Vouch: `code` names it (the node's error code for `ApiError`s), `status` is the HTTP status
    when a node answered."""

    code: str = "error"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.details = details

    def __str__(self) -> str:
        if self.status is not None:
            return f"{self.message} ({self.code}, HTTP {self.status})"
        return self.message


class ApiError(VouchError):
    """The node answered with an error. A code this package does not know is raised as `ApiError` itself;
    known codes raise their subclass (see `vouch.errors.ERRORS`)."""

    code = "api_error"


class NodeUnreachableError(VouchError):
    """The node could not be reached."""

    code = "node_unreachable"


class ProtocolError(VouchError):
    """The node's answer is not what the API promises."""

    code = "protocol"


class HashMismatchError(VouchError):
    """Downloaded bytes do not hash to the id asked for (the file was removed)."""

    code = "hash_mismatch"


class UsageError(VouchError, ValueError):
    """A call that cannot be made as given: an option that makes no sense, a file that is not what it should be."""

    code = "usage"


class TxFailedError(VouchError):
    """A transaction was included in a block and failed; `record` is the ledger's record of it."""

    code = "tx_failed"

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = record
