"""The web page (``GET /ui``) in a real browser: Debian's Chromium, headless, driven by
Playwright, against real ``dynago node`` processes on 127.0.0.1.

Every wait polls the DOM with a deadline (``wait_for_function``). Screenshots go to
``bench-results/`` at the repository root. Skipped only where no Chromium executable is
installed (``apt-get install chromium``); Playwright itself is in the ``test`` extra and
never downloads a browser: ``executable_path`` is always the system one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_support import Cluster  # tests/ is on sys.path under pytest

from dynago.kv.model import ObjectKey
from dynago.kv.ring import partition_of
from dynago.launch import NodeProcess, http_json

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # a failure below, not a skip: the test extra installs it
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[2] / "bench-results"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium executable on PATH (Debian: apt-get install chromium)")

DOM_TIMEOUT_MS = 15_000
FAILED_DEADLINE_S = 30.0
"""How long the page may take to show a SIGKILLed node failed (preset local detects it in
a few seconds; the event reaches the page at once)."""


@pytest.fixture
def page() -> Iterator[Page]:
    """A headless Chromium page (1400x900) whose uncaught errors and CSP refusals fail
    the test."""
    if sync_playwright is None:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    problems: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            tab.on("console", lambda msg: problems.append(f"console: {msg.text}")
                   if "Content Security Policy" in msg.text else None)
            yield tab
        finally:
            browser.close()
    assert not problems, problems


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_dom(page: Page, script: str, arg: Any = None, timeout_ms: int = DOM_TIMEOUT_MS) -> Any:
    """Poll ``script`` (a JS function of ``arg``) in the page until it is truthy."""
    return page.wait_for_function(script, arg=arg, timeout=timeout_ms, polling=100).json_value()


def cell(page: Page, member: str, field: str) -> str:
    return page.inner_text(f'#members tr[data-member="{member}"] td[data-field="{field}"]')


def put(node: NodeProcess, bucket: str, key: str, value: str) -> None:
    status, _ = Cluster.http_status(node.http, f"/buckets/{bucket}/keys/{key}", method="PUT",
                                    headers={"Content-Type": "text/plain"},
                                    body=value.encode(), timeout_s=10.0)
    assert status in (200, 204), f"PUT {bucket}/{key} through {node.name}: {status}"


def test_ui_page_follows_a_live_cluster(cluster: Cluster, page: Page) -> None:
    first = cluster("ui-1")
    others = cluster.start_many([("ui-2", [first.address], []), ("ui-3", [first.address], [])])
    nodes = [first, *others]
    cluster.wait(lambda: all(cluster.statuses(n) == dict.fromkeys(
        ("ui-1", "ui-2", "ui-3"), "alive") for n in nodes), "every node to hold 3 alive")

    page.goto(f"http://{first.http}/ui")
    wait_dom(page, "() => document.querySelectorAll("
                   "'#members tbody tr[data-status=\"alive\"]').length === 3")
    # The ring: 64 partitions drawn, one legend entry per owner, shares in the table.
    wait_dom(page, "() => document.querySelectorAll('#ring path').length === 64 && "
                   "document.querySelectorAll('#legend li').length === 3")
    ring = http_json(first.http, "/v1/ring")
    share = next(m for m in ring["members"] if m["name"] == "ui-2")
    assert cell(page, "ui-2", "ring") == f"{share['partitions']} ({share['share'] * 100:.1f}%)"
    # No member carries an http tag yet: the page says it shows this node only.
    wait_dom(page, "() => document.getElementById('stats-note').textContent"
                   ".includes('this node only')")
    assert cell(page, "ui-2", "ops") == ""

    # Give every node its http tag: the page then polls the others' stats too.
    for node in nodes:
        http_json(node.http, "/v1/tags", method="POST", body={"http": node.http})
    wait_dom(page, "() => ['ui-1', 'ui-2', 'ui-3'].every(n => document.querySelector("
                   "`#members tr[data-member=\"${n}\"] td[data-field=\"ops\"]`)"
                   ".textContent === '0')")
    shot(page, "1-three-alive")

    # Writes through ui-1 and ui-2 move their counters on the page (ui-2's across origins).
    for i in range(5):
        put(first, "ui", f"k-{i}", f"value-{i}")
    put(others[0], "ui", "k-from-2", "two")
    wait_dom(page, """() => {
        const get = (n, f) => document.querySelector(
            `#members tr[data-member="${n}"] td[data-field="${f}"]`).textContent;
        return get('ui-1', 'ops') === '5' && get('ui-2', 'ops') === '1'
            && Number(get('ui-1', 'keys')) >= 1 && get('ui-1', 'p99-put').startsWith('≤')
            && Number(get('ui-1', 'rate')) > 0;
    }""")

    # The key box: partition, preference list and the value a quorum read returns.
    page.fill("#bucket", "ui")
    page.fill("#key", "k-3")
    page.click("#key-form button")
    wait_dom(page, "() => document.querySelector('#key-result [data-field=value]')")
    expected = partition_of(ObjectKey("ui", "k-3"), 64)
    assert page.inner_text("#key-result [data-field=partition]") == f"{expected} of 64"
    assert page.inner_text("#key-result [data-field=value]") == "value-3"
    explained = http_json(first.http, "/v1/kv/explain?bucket=ui&key=k-3")
    listed = page.eval_on_selector_all("#key-result [data-field=preference-list] li",
                                       "items => items.map(i => i.dataset.member)")
    assert listed == explained["preference_list"] and sorted(listed) == ["ui-1", "ui-2", "ui-3"]
    assert page.get_attribute(f'#ring path[data-partition="{expected}"]', "class") == "key"
    # ...and per replica (dynago kv explain): each holds the value, current, and says how
    # it got there: the coordinator wrote it, the others took it as replicas.
    shown = page.eval_on_selector_all(
        "#key-result [data-field=replicas] tbody tr",
        "rows => rows.map(r => [r.dataset.node, r.querySelector('[data-field=copy]').textContent,"
        " r.querySelector('[data-field=behind]').textContent,"
        " r.querySelector('[data-field=how]').textContent])")
    assert sorted(row[0] for row in shown) == ["ui-1", "ui-2", "ui-3"]
    assert all(row[1:3] == ["holds", "current"] for row in shown), shown
    hows = " ".join(row[3] for row in shown)
    assert "coordinated" in hows and "replica from" in hows, shown
    shot(page, "2-key-box")

    # SIGKILL ui-3: the page shows it failed (the event stream, no reload) within a deadline.
    killed_at = time.monotonic()
    others[1].kill()
    wait_dom(page, "() => document.querySelector('#members tr[data-member=\"ui-3\"]')"
                   ".dataset.status === 'failed'", timeout_ms=int(FAILED_DEADLINE_S * 1000))
    took = time.monotonic() - killed_at
    assert took < FAILED_DEADLINE_S
    # The ring marks ui-3's partitions as held by an unhealthy primary: with 3 nodes and
    # N=3 no fallback is left outside the preference lists (the coordinator keeps hints).
    wait_dom(page, "() => document.querySelectorAll('#ring path.fallback').length > 0")
    fallbacks = http_json(first.http, "/v1/ring")["fallbacks"]
    assert fallbacks and {f["owner"] for f in fallbacks} == {"ui-3"}
    assert {f["fallback"] for f in fallbacks} == {None}
    assert page.locator("#ring path.fallback").count() == len(fallbacks)
    assert f"{len(fallbacks)} fallback(s)" in page.inner_text("#ring-info")

    # A click on the member: its history, in the words the node gives ("why is ui-3 dead?").
    page.click('#members tr[data-member="ui-3"]')
    wait_dom(page, "() => document.querySelector('#history tbody tr[data-status=\"failed\"]')")
    history = http_json(first.http, "/v1/members/ui-3/history")
    failed = [e["explanation"] for e in history["history"] if e["status"] == "failed"]
    shown = page.inner_text("#history tbody")
    assert failed and all(text in shown for text in failed), (failed, shown)
    assert "ui-3" in page.inner_text("#history-name")
    shot(page, "3-failed-and-history")
    print(f"ui: the page showed ui-3 failed {took:.2f} s after its SIGKILL")


def synthetic_members(count: int) -> list[dict[str, Any]]:
    statuses = ["alive"] * 7 + ["suspect", "failed", "left"]
    return [{"name": f"node-{i:03d}", "address": f"10.0.{i // 200}.{i % 200 + 1}:7001",
             "status": statuses[i % len(statuses)], "incarnation": i % 4,
             "since": "2026-01-01T00:00:00.000Z",
             "tags": {"zone": f"z{i % 3}", "role": "kv"}} for i in range(count)]


def test_ui_page_stays_usable_with_100_members(cluster: Cluster, page: Page) -> None:
    node = cluster("ui-solo")
    members = synthetic_members(100)
    ring_members = [m for m in members if m["status"] != "left"]
    partitions = 256
    owners = [ring_members[p % len(ring_members)]["name"] for p in range(partitions)]
    ring = {"partitions": partitions, "n_val": 3, "owners": owners,
            "members": [{"name": m["name"], "zone": m["tags"]["zone"],
                         "partitions": owners.count(m["name"]),
                         "share": owners.count(m["name"]) / partitions}
                        for m in ring_members]}
    # The node's real page, fed a 100-member cluster in place of its own event stream
    # and ring (everything else, /healthz and /v1/stats included, is the node's).
    page.route("**/v1/events*", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"},
        body=f"event: snapshot\ndata: {json.dumps(members)}\n\n"))
    page.route("**/v1/ring", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "application/json"}, body=json.dumps(ring)))
    page.goto(f"http://{node.http}/ui")
    wait_dom(page, "() => document.querySelectorAll('#members tbody tr').length === 100 && "
                   f"document.querySelectorAll('#ring path').length === {partitions} && "
                   f"document.querySelectorAll('#legend li').length === {len(ring_members)}")
    # Compact: a row is one line, and the whole page stays within a couple of screens.
    heights = page.eval_on_selector_all("#members tbody tr",
                                        "rows => rows.map(r => r.offsetHeight)")
    assert max(heights) <= 20, max(heights)
    assert page.evaluate("document.documentElement.scrollHeight") <= 2 * 900
    shot(page, "4-hundred-members")
    # The filter narrows the list; the ring dims all but the selected member's partitions.
    page.fill("#filter", "failed")
    wait_dom(page, "() => document.querySelectorAll('#members tbody tr').length === 10")
    page.fill("#filter", "")
    wait_dom(page, "() => document.querySelectorAll('#members tbody tr').length === 100")
    page.click('#members tr[data-member="node-004"]')
    wait_dom(page, "() => document.getElementById('ring').classList.contains('focus') && "
                   "document.querySelectorAll('#ring path.mine').length === "
                   f"{owners.count('node-004')}")
    shot(page, "5-hundred-members-one-selected")
