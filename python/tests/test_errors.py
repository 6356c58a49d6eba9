"""Errors: the generated classes are current, and every error code arrives as its class (through httpx's
MockTransport, for the codes that need faults to reach; test_node.py triggers the reachable ones on a real node)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import BENCH, ROOT

import vouch
from vouch import _native
from vouch.errors import ERRORS


def test_generated_error_classes_match_the_api_document() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "python" / "tools" / "gen_errors.py"), "--check"])
    assert r.returncode == 0
    doc = json.loads((ROOT / "crates" / "vouch-node" / "src" / "api" / "openapi.json").read_text())
    codes = {e["code"] for e in doc["components"]["schemas"]["ErrorCode"]["x-codes"]}
    assert set(ERRORS) == codes


def mock_client(status: int, body: bytes, content_type: str = "application/json") -> vouch.Client:
    c = vouch.Client("http://node.invalid")
    c._http = httpx.Client(
        base_url="http://node.invalid",
        transport=httpx.MockTransport(
            lambda _: httpx.Response(status, content=body, headers={"content-type": content_type})
        ),
    )
    return c


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_every_code_raises_its_class(code: str) -> None:
    body = json.dumps({"error": {"code": code, "message": f"about {code}", "details": {"k": 1}}}).encode()
    with pytest.raises(ERRORS[code]) as e:
        mock_client(409, body).ledger.status()
    assert e.value.code == code and e.value.status == 409
    assert e.value.message == f"about {code}" and e.value.details == {"k": 1}
    assert isinstance(e.value, vouch.ApiError) and isinstance(e.value, vouch.VouchError)


def test_an_unknown_code_is_an_api_error() -> None:
    body = json.dumps({"error": {"code": "brand_new", "message": "m"}}).encode()
    with pytest.raises(vouch.ApiError) as e:
        mock_client(418, body).status()
    assert type(e.value) is vouch.ApiError and e.value.code == "brand_new" and e.value.status == 418


def test_a_body_that_is_not_the_error_document_is_http_error() -> None:
    with pytest.raises(vouch.ApiError) as e:
        mock_client(502, b"<html>bad gateway</html>", "text/html").status()
    assert e.value.code == "http_error" and e.value.status == 502 and "bad gateway" in e.value.message


def test_an_answer_that_is_not_json_is_a_protocol_error() -> None:
    with pytest.raises(vouch.ProtocolError, match="not JSON"):
        mock_client(200, b"\x00\x01").status()


def test_a_refused_connection_is_node_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(vouch.NodeUnreachableError, match=f"cannot reach node at http://127.0.0.1:{port}"):
        vouch.Client(f"http://127.0.0.1:{port}").status()


def test_an_ndjson_error_event_raises_its_class() -> None:
    events = (
        b'{"event":"progress","layer":0,"done":1,"total":2,"rows":8}\n'
        + json.dumps({"event": "error", "status": 422, "error": {"code": "proof_failed", "message": "no"}}).encode()
    )
    c = mock_client(200, events, "application/x-ndjson")
    c._http = httpx.Client(
        base_url="http://node.invalid",
        transport=httpx.MockTransport(
            lambda r: (
                httpx.Response(200, content=b'{"inputs":[{"name":"x"}]}')
                if r.method == "GET"
                else httpx.Response(200, content=events)
            )
        ),
    )
    seen: list[dict[str, object]] = []
    with pytest.raises(vouch.errors.ProofFailedError) as e:
        c.infer("m", {"x": [1.0]}, mode="zk", progress=seen.append)
    assert e.value.status == 422 and len(seen) == 1


def test_a_pulled_blob_that_is_not_the_model_is_removed(tmp_path: Path) -> None:
    model_id = _native.model_id_of_file(str(BENCH / "mlp_small.onnx"))
    c = mock_client(200, (BENCH / "mlp_mnist.onnx").read_bytes(), "application/octet-stream")
    out = tmp_path / "pulled.onnx"
    with pytest.raises(vouch.HashMismatchError, match=f"not the requested {model_id}; the file was removed"):
        c.models.pull(model_id, out)
    assert not out.exists()
