"""Fixtures: real `vouch` node processes (the binary the Rust tests build), and both clients."""

from __future__ import annotations

import inspect
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vouch

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT.parent / "shared" / "bench" / "models"


def vouch_bin() -> str:
    """`$VOUCH_BIN`, else the debug binary in the cargo target directory (`cargo nextest run --workspace` builds
    it; these tests never build it themselves, which would unify features differently and rebuild)."""
    if os.environ.get("VOUCH_BIN"):
        return os.environ["VOUCH_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    path = target / "debug" / "vouch"
    if not path.is_file():
        pytest.fail(f"{path} is missing: build it (cargo nextest run --workspace) or set VOUCH_BIN")
    return str(path)


class Node:
    """A `vouch node run --dev` process with its own home, on a free loopback port."""

    def __init__(self, home: Path, *extra: str, config: str = "") -> None:
        self.home = home
        if config:
            home.mkdir(parents=True, exist_ok=True)
            (home / "config.toml").write_text(config)
        self.proc = subprocess.Popen(
            [vouch_bin(), "node", "run", "--dev", "--listen", "127.0.0.1:0", "--home", str(home), *extra],
            stdout=subprocess.PIPE,
            env={**os.environ, "VOUCH_LOG": "warn"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        prefix = "vouch node listening on "
        if not line.startswith(prefix):
            self.proc.kill()
            raise RuntimeError(f"unexpected first line {line!r}")
        self.url = line.removeprefix(prefix)
        # Keep draining stdout so the node never writes into a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs the `vouch` CLI against this node (pushes signed by its key, as its operator's would be)."""
        env = {**os.environ, "VOUCH_NODE": self.url, "VOUCH_HOME": str(self.home)}
        env.pop("VOUCH_ACCOUNT", None)
        return subprocess.run([vouch_bin(), *args], capture_output=True, text=True, env=env, timeout=600)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Devnet:
    """`vouch devnet --nodes N`: real node processes on loopback, below the ephemeral port range (32768+) and away
    from the Rust tests' ports (21000-29000, which run before these)."""

    def __init__(self, home: Path, nodes: int, slot: int, *extra: str) -> None:
        import httpx

        self.home = home / "net"
        base = 23000 + ((os.getpid() + 97 * slot) % 1000) * 8
        self.proc = subprocess.Popen(
            [vouch_bin(), "devnet", "--nodes", str(nodes), "--base-port", str(base), "--home", str(self.home), *extra],
            stdout=subprocess.DEVNULL,
            env={**os.environ, "VOUCH_LOG": "warn"},
        )
        self.urls = [f"http://127.0.0.1:{base + i}" for i in range(nodes)]
        self.account = self.home / "dev-account.key"

        def ready() -> bool:
            # Every node sees every node registered with the same declared engine (quorum executors are drawn from
            # one engine group; a node's engine is empty until its `SetEngine` is finalized).
            try:
                for u in self.urls:
                    if httpx.get(f"{u}/v1/ledger/status").json()["height"] < 2:
                        return False
                    registered = httpx.get(f"{u}/v1/ledger/nodes").json()
                    engines = {n["engine"] for n in registered}
                    if len(registered) != nodes or len(engines) != 1 or "" in engines:
                        return False
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            return True

        deadline = time.monotonic() + 120
        while not ready():
            assert self.proc.poll() is None, "the devnet exited"
            assert time.monotonic() < deadline, "the devnet did not come up within 120 s"
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM, which stops the devnet and its nodes: none is left answering."""
        import httpx

        self.proc.terminate()
        assert self.proc.wait(timeout=60) == 0
        for u in self.urls:
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{u}/v1/health", timeout=2)


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(tmp_path_factory.mktemp("node"))
    yield n
    n.stop()


@pytest.fixture(autouse=True)
def _node_key_home(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushes from the clients are signed with the session node's key, as its operator's would be."""
    monkeypatch.delenv("VOUCH_ACCOUNT", raising=False)
    if "node" in request.fixturenames:
        monkeypatch.setenv("VOUCH_HOME", str(request.getfixturevalue("node").home))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, node: Node) -> Iterator[vouch.Client | vouch.AsyncClient]:
    """Each client test runs twice: with `vouch.Client` and with `vouch.AsyncClient`."""
    c: vouch.Client | vouch.AsyncClient = (
        vouch.Client(node.url) if request.param == "sync" else vouch.AsyncClient(node.url)
    )
    yield c
    if isinstance(c, vouch.Client):
        c.close()


async def maybe(x: Any) -> Any:
    """The value of a sync client's call, or the awaited value of an async one's."""
    return await x if inspect.isawaitable(x) else x
