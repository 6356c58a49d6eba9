"""The web explorer (`/explorer/`) in a real headless Chromium (Debian's chromium and chromium-driver) against
`vouch devnet --nodes 4` with traffic: every view shows what the JSON API says, navigation, search and the keyboard
work, a live counter advances, unknown ids get their message, phone width does not overflow, and no view logs a
console error. With `VOUCH_SCREENSHOTS=DIR` it also saves each view at desktop and phone width
(`scripts/explorer-screenshots.sh`)."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import Devnet
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from testmodels import bench, input_of

import vouch

DESKTOP = (1280, 900)
PHONE = (390, 844)
SCREENSHOTS = os.environ.get("VOUCH_SCREENSHOTS")


class World:
    """A devnet with traffic, and what the API says about it."""

    def __init__(self, net: Devnet, tmp: Path) -> None:
        self.net = net
        # The explorer of the node that served the traffic (receipts are kept by the node that issued them).
        self.url = net.urls[1]
        c = vouch.Client(net.urls[1])
        pushed = c.models.push(bench("mlp_small"), name="mlp-small", description="16-16-8 MLP", account=net.account)
        cal = [dict([input_of(bench("mlp_small"), 100 + i)]) for i in range(6)]
        self.zk_model = c.models.push(bench("mlp_small"), name="mlp-zk", zk=True, calibration=cal, account=net.account)
        _, x = input_of(bench("mlp_small"), 1)
        # Every node runs it (the others fetch it by id from a peer once the ledger records it) and settles its receipt.
        self.signed = [self.infer_when_known(u, pushed["id"], {"x": x + i}) for i, u in enumerate(net.urls)]
        self.quorum = c.infer("mlp-small", x, mode="quorum", quorum=3, account=net.account).receipt
        self.zk = c.infer("mlp-zk", x, mode="zk").receipt
        key = vouch.Key.create(tmp / "alice.key")
        self.alice = key.address
        self.transfer = c.tx.transfer(key.address, 1234, account=net.account, wait=True)
        self.quorum = c.receipts.wait(self.quorum.id, timeout=90)
        self.signed[1] = c.receipts.wait(self.signed[1].id, timeout=90)
        c.close()

    @staticmethod
    def infer_when_known(url: str, model: str, x: Any) -> vouch.Receipt:
        deadline = time.monotonic() + 60
        with vouch.Client(url) as c:
            while True:
                try:
                    return c.infer(model, x).receipt
                except vouch.errors.ModelNotFoundError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

    def api(self, path: str) -> Any:
        return httpx.get(f"{self.url}{path}", timeout=10).json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    net = Devnet(tmp_path_factory.mktemp("explorer"), 4, 1)
    try:
        yield World(net, tmp_path_factory.mktemp("keys"))
    finally:
        net.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_window_size(*DESKTOP)
    yield driver
    driver.quit()


@pytest.fixture
def b(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser at desktop width; fails the test if the page logged a console error."""
    browser.set_window_size(*DESKTOP)
    console(browser)
    yield browser
    errors = [e for e in console(browser) if e["level"] == "SEVERE" and not expected_miss(e)]
    assert not errors, errors


def expected_miss(entry: dict[str, Any]) -> bool:
    """Chrome logs every 4xx answer as a failed resource. The explorer asks the API about ids that may not exist (a
    search tries each kind; an unknown id is the point of some tests), so a 404 or 400 from `/v1/` is an answer, not
    an error; anything else (a script error, a missing asset, a 5xx) fails the test."""
    m = str(entry.get("message", ""))
    return entry.get("source") == "network" and "/v1/" in m and ("status of 404" in m or "status of 400" in m)


def console(b: WebDriver) -> list[dict[str, Any]]:
    """The browser console's entries since the last call (chromedriver's log endpoint; selenium leaves it untyped)."""
    return list(b.get_log("browser"))  # type: ignore[no-untyped-call]


def open_view(b: WebDriver, world: World, route: str, ready: str) -> None:
    """Loads `/explorer/#route` and waits until `ready` (a CSS selector) is on the page."""
    b.get(f"{world.url}/explorer/#{route}")
    wait_for(b, lambda: b.find_elements(By.CSS_SELECTOR, ready), f"{ready} on #{route}")


def wait_for(b: WebDriver, cond: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    try:
        # A view replaces its content when its data arrives: an element read mid-swap is simply read again.
        ignored = (StaleElementReferenceException, NoSuchElementException)
        return WebDriverWait(b, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(lambda _: cond())
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what}; page: {b.find_element(By.TAG_NAME, 'main').text[:500]}")


def text(b: WebDriver, css: str) -> str:
    return str(b.find_element(By.CSS_SELECTOR, css).text)


def heading(b: WebDriver) -> str:
    return text(b, "main h1")


def test_overview_shows_the_chain_and_updates_live(b: WebDriver, world: World) -> None:
    before = world.api("/v1/ledger/status")
    open_view(b, world, "/", "#validators tbody tr")
    shown = int(text(b, "#height"))
    after = world.api("/v1/ledger/status")
    assert before["height"] <= shown <= after["height"]
    assert text(b, "#chain-id") == after["chain_id"]
    assert text(b, "#validator-count") == str(len(after["validators"])) == "4"
    rows = b.find_elements(By.CSS_SELECTOR, "#validators tbody tr a[href^='#/node/']")
    assert sorted(str(r.get_attribute("title")) for r in rows) == sorted(v["node_id"] for v in after["validators"])
    # The live counter advances without a reload.
    wait_for(b, lambda: int(text(b, "#height")) > shown, "the height to advance")
    assert b.find_elements(By.CSS_SELECTOR, "#chart-finality polyline")
    assert b.find_elements(By.CSS_SELECTOR, "#chart-receipts polyline")


def test_blocks_list_and_block_detail(b: WebDriver, world: World) -> None:
    open_view(b, world, "/blocks", "#blocks tbody tr")
    first = b.find_element(By.CSS_SELECTOR, "#blocks tbody tr a")
    height = int(first.text)
    first.click()
    wait_for(b, lambda: heading(b) == f"Block {height}", "the block page")
    api = world.api(f"/v1/ledger/blocks/{height}")
    assert text(b, "[data-field=hash]") == api["hash"]
    assert len(b.find_elements(By.CSS_SELECTOR, "#block-txs tbody tr")) == len(api["txs"])


def test_transaction_view_decodes_the_action(b: WebDriver, world: World) -> None:
    tx = world.transfer
    open_view(b, world, f"/tx/{tx['id']}", "[data-field=kind]")
    assert text(b, "[data-field=kind]") == "transfer"
    assert text(b, "[data-field=height]").startswith(str(tx["height"]))
    assert text(b, "[data-field=result]") == "ok"
    assert world.alice[:8] in text(b, "main")
    # The block of the transaction lists it, linked back.
    b.find_element(By.CSS_SELECTOR, "[data-field=height] a").click()
    wait_for(b, lambda: heading(b) == f"Block {tx['height']}", "the transaction's block")
    assert b.find_elements(By.CSS_SELECTOR, f"#block-txs a[href='#/tx/{tx['id']}']")


def test_receipt_view_with_the_nodes_checks(b: WebDriver, world: World) -> None:
    r = world.quorum
    open_view(b, world, f"/receipt/{r.id}", "#checks li.ok")
    wait_for(b, lambda: "Verifying" not in text(b, "#checks"), "the node's verification")
    assert text(b, "[data-field=id]") == r.id
    assert text(b, "[data-field=mode]") == "quorum"
    shown = [a.get_attribute("title") for a in b.find_elements(By.CSS_SELECTOR, "[data-field=executors] a")]
    assert shown == r.executors
    checks = b.find_elements(By.CSS_SELECTOR, "#checks li")
    assert checks and all("ok" in (c.get_attribute("class") or "") for c in checks)
    assert any(c.text.startswith("✓ anchor") for c in checks)
    assert str(r.anchor["height"]) in text(b, "[data-field=anchor]") if r.anchor else False
    assert text(b, "#verify-command").endswith("vouch verify receipt.json --genesis genesis.json")
    # The model link leads to the model.
    b.find_element(By.CSS_SELECTOR, "[data-field=model] a").click()
    wait_for(
        b,
        lambda: b.find_elements(By.CSS_SELECTOR, "[data-field=id]") and text(b, "[data-field=id]") == r.model,
        "model",
    )


def test_zk_receipt_and_model(b: WebDriver, world: World) -> None:
    open_view(b, world, f"/receipt/{world.zk.id}", "#checks li.ok")
    wait_for(b, lambda: "zk proof" in text(b, "#checks"), "the zk check")
    open_view(b, world, "/model/mlp-zk", "[data-field=zk-commitment]")
    assert text(b, "[data-field=zk-commitment]") == world.zk_model["zk"]["commitment"]
    assert text(b, "[data-field=id]") == world.zk_model["id"]


def test_models_list_and_detail(b: WebDriver, world: World) -> None:
    open_view(b, world, "/models", "#models tbody tr")
    names = [a.text for a in b.find_elements(By.CSS_SELECTOR, "#models tbody tr td:first-child a")]
    assert sorted(names) == sorted(r["name"] for r in world.api("/v1/models")["repos"])
    b.find_element(By.LINK_TEXT, "mlp-small").click()
    wait_for(b, lambda: heading(b).startswith("mlp-small@"), "the model page")
    api = world.api("/v1/models/mlp-small")
    assert text(b, "[data-field=id]") == api["id"]
    assert text(b, "[data-field=size]").endswith(f"({api['size']} bytes)")
    assert api["owner"][:10] in text(b, "[data-field=owner]")


def test_nodes_view(b: WebDriver, world: World) -> None:
    open_view(b, world, "/nodes", "#nodes tbody tr")
    rows = b.find_elements(By.CSS_SELECTOR, "#nodes tbody tr")
    api = {n["node"]: n for n in world.api("/v1/ledger/nodes")}
    assert len(rows) == len(api) == 4
    for row in rows:
        cells = row.find_elements(By.TAG_NAME, "td")
        n = api[cells[0].find_element(By.TAG_NAME, "a").get_attribute("title")]
        assert cells[3].text == str(n["stake"]) and cells[5].text == str(n["slashed"])


def test_account_view(b: WebDriver, world: World) -> None:
    open_view(b, world, f"/account/{world.alice}", "[data-field=balance]")
    assert text(b, "[data-field=balance]") == str(world.api(f"/v1/ledger/accounts/{world.alice}")["balance"]) == "1234"
    wait_for(b, lambda: b.find_elements(By.CSS_SELECTOR, f"#account-txs a[href='#/tx/{world.transfer['id']}']"), "tx")


def search(b: WebDriver, q: str) -> None:
    box = b.find_element(By.ID, "q")
    box.clear()
    box.send_keys(q, Keys.ENTER)


def test_search_takes_any_id(b: WebDriver, world: World) -> None:
    open_view(b, world, "/", "#height")
    cases = [
        (world.signed[1].id, f"#/receipt/{world.signed[1].id}"),
        (world.transfer["id"], f"#/tx/{world.transfer['id']}"),
        ("3", "#/block/3"),
        (world.alice, f"#/account/{world.alice}"),
        (world.signed[2].executors[0], f"#/node/{world.signed[2].executors[0]}"),
        ("mlp-small", "#/model/mlp-small"),
        (world.zk_model["id"], f"#/model/{world.zk_model['id']}"),
    ]
    for q, want in cases:
        search(b, q)
        wait_for(b, lambda: b.execute_script("return location.hash") == want, f"search {q}")  # noqa: B023
    search(b, "ab" * 32)
    wait_for(b, lambda: "Nothing found" in text(b, "main"), "the not-found message")


@pytest.mark.parametrize(
    ("route", "says"),
    [
        ("/receipt/" + "00" * 32, "Unknown receipt"),
        ("/receipt/nonsense", "Unknown receipt"),
        ("/block/999999999", "Unknown block"),
        ("/block/x", "Not a block height"),
        ("/tx/" + "00" * 32, "Unknown transaction"),
        ("/model/no-such-model", "Unknown model"),
        ("/node/" + "00" * 32, "Unknown node"),
        ("/account/xyz", "Not an address"),
        ("/no/such/page", "No such page"),
    ],
)
def test_unknown_ids_say_so(b: WebDriver, world: World, route: str, says: str) -> None:
    open_view(b, world, route, ".message")
    assert text(b, ".message h1") == says


def test_keyboard(b: WebDriver, world: World) -> None:
    open_view(b, world, "/", "#height")
    b.find_element(By.TAG_NAME, "body").send_keys("/")
    assert b.switch_to.active_element.get_attribute("id") == "q"
    b.switch_to.active_element.send_keys("2", Keys.ENTER)
    wait_for(b, lambda: heading(b) == "Block 2", "the block by keyboard")
    # On a fresh load, the tab order starts at the skip link, then the brand, then the views.
    b.get(f"{world.url}/explorer/#/models")
    b.refresh()
    wait_for(b, lambda: b.find_elements(By.CSS_SELECTOR, "#models"), "models")
    b.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert b.switch_to.active_element.get_attribute("class") == "skip"
    b.switch_to.active_element.send_keys(Keys.TAB)
    b.switch_to.active_element.send_keys(Keys.TAB)
    b.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(b, lambda: b.execute_script("return location.hash") == "#/", "overview by keyboard")


def test_phone_width_does_not_overflow(b: WebDriver, world: World) -> None:
    b.set_window_size(*PHONE)
    for route, ready in [("/", "#validators"), (f"/receipt/{world.quorum.id}", "#checks li.ok"), ("/nodes", "#nodes")]:
        open_view(b, world, route, ready)
        overflow = b.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (route, overflow)


@pytest.mark.skipif(not SCREENSHOTS, reason="set VOUCH_SCREENSHOTS=DIR to save the views' screenshots")
def test_screenshots(b: WebDriver, world: World) -> None:
    out = Path(str(SCREENSHOTS))
    out.mkdir(parents=True, exist_ok=True)
    views = [
        ("overview", "/", "#chart-receipts polyline"),
        ("blocks", "/blocks", "#blocks"),
        ("block", f"/block/{world.transfer['height']}", "#block-txs"),
        ("transaction", f"/tx/{world.transfer['id']}", "[data-field=kind]"),
        ("receipt", f"/receipt/{world.quorum.id}", "#checks li.ok"),
        ("models", "/models", "#models"),
        ("model", "/model/mlp-zk", "[data-field=zk-commitment]"),
        ("nodes", "/nodes", "#nodes"),
        ("account", f"/account/{world.alice}", "#account-txs table"),
        ("unknown", "/receipt/" + "00" * 32, ".message"),
    ]
    for size_name, size in [("desktop", DESKTOP), ("phone", PHONE)]:
        b.set_window_size(*size)
        for name, route, ready in views:
            open_view(b, world, route, ready)
            time.sleep(0.3)
            # The whole page, not only the window (Chrome's own capture, through the DevTools protocol).
            width, height = b.execute_script("return [window.innerWidth, document.documentElement.scrollHeight]")
            shot = b.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1},
                },
            )
            (out / f"{name}-{size_name}.png").write_bytes(base64.b64decode(shot["data"]))


def test_signed_inputs_are_shown(b: WebDriver, world: World) -> None:
    r = world.signed[1]
    open_view(b, world, f"/receipt/{r.id}", "#checks li.ok")
    inputs = r.inputs
    assert inputs is not None
    first = float(np.asarray(next(iter(inputs.values()))).ravel()[0])
    assert f"{first:.6g}" in text(b, ".tensors")


def test_the_nodes_verification_checks_the_anchor_against_its_own_chain(world: World, node: Any) -> None:
    """`POST /v1/verify` (the receipt view's checks): the devnet's anchored receipt verifies on a devnet node, and
    the same receipt is refused by a node of another chain, and by the devnet node once its anchor is changed."""
    doc = world.quorum.to_dict()
    ok = httpx.post(f"{world.url}/v1/verify", json=doc, timeout=30).json()
    assert ok["valid"] is True and [c["check"] for c in ok["checks"]] == ["receipt", "signatures", "anchor"]
    assert all(c["ok"] for c in ok["checks"])
    other = httpx.post(f"{node.url}/v1/verify", json=doc, timeout=30).json()
    assert other["valid"] is False and other["reason"].startswith("anchor: ")
    assert other["checks"][-1] == {"check": "anchor", "ok": False, "detail": other["reason"]}
    doc["anchor"]["height"] += 1
    moved = httpx.post(f"{world.url}/v1/verify", json=doc, timeout=30).json()
    assert moved["valid"] is False and moved["reason"].startswith("anchor: ")
    del doc["evidence"][0]
    broken = httpx.post(f"{world.url}/v1/verify", json=doc, timeout=30).json()
    assert broken["valid"] is False and broken["checks"] == [
        {"check": "receipt", "ok": False, "detail": broken["reason"]}
    ]
