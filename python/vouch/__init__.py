"""Vouch for Python: push models, run them with numpy arrays, and verify every receipt with the Rust verifier.

import numpy as np, vouch
c = vouch.Client()                                  # $VOUCH_NODE or http://127.0.0.1:7070
c.models.push("mlp.onnx", name="mlp")
r = c.infer("mlp", np.zeros((1, 16), np.float32))   # r.outputs: dict of arrays; r.receipt: the receipt
assert vouch.verify(r.receipt).ok                   # the checks of `vouch verify`, offline
"""

from __future__ import annotations

from . import errors
from ._base import (
    ApiError,
    HashMismatchError,
    NodeUnreachableError,
    ProtocolError,
    TxFailedError,
    UsageError,
    VouchError,
)
from ._ops import Inference
from .aio import AsyncClient
from .client import Client
from .receipt import Receipt
from .verify import Anchor, Key, Verification, verify

__version__ = "0.1.0"

__all__ = [
    "Anchor",
    "ApiError",
    "AsyncClient",
    "Client",
    "HashMismatchError",
    "Inference",
    "Key",
    "NodeUnreachableError",
    "ProtocolError",
    "Receipt",
    "TxFailedError",
    "UsageError",
    "Verification",
    "VouchError",
    "__version__",
    "errors",
    "verify",
]
