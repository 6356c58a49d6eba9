"""Every exception class: the bases, and one class per error code the node answers with (`ERRORS`, generated from
its API document). `except vouch.errors.ShapeMismatchError:` catches exactly that code."""

from __future__ import annotations

from ._base import (
    ApiError,
    HashMismatchError,
    NodeUnreachableError,
    ProtocolError,
    TxFailedError,
    UsageError,
    VouchError,
)
from ._errors import *  # noqa: F403
from ._errors import ERRORS

__all__ = [
    "ERRORS",
    "ApiError",
    "HashMismatchError",
    "NodeUnreachableError",
    "ProtocolError",
    "TxFailedError",
    "UsageError",
    "VouchError",
]
