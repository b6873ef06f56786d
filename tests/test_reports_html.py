"""report.html in a real browser: headless Chromium shows summary.json's figures, filters narrow
the table, hostile names stay text.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages
separated by NUL bytes on file descriptors 3 and 4), so no driver or websocket package is needed.
Without a chromium binary the browser tests skip, except with GRIDRECON_REQUIRE_SERVERS=1 (CI):
then they fail. GRIDRECON_UPDATE_GOLDEN=1 also refreshes docs/report.png, the README's screenshot.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import os
import re
import select
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, SAMPLE, servers_required
from test_reports_golden import CLEANED, HOSTILE, UPDATE, golden_result, sample_result

from gridrecon import api
from gridrecon.core.config import load_config
from gridrecon.reports.html import render_html
from gridrecon.reports.output import write_run_folder

SCREENSHOT = REPO / "docs" / "report.png"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--lang=zh-CN",
]  # fmt: skip


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    message = "chromium is not installed (Debian: apt-get install chromium)"
    if servers_required():
        pytest.fail(message + " (GRIDRECON_REQUIRE_SERVERS=1)")
    pytest.skip(message)


class Browser:
    """Headless Chromium and one tab, over the DevTools protocol on a pipe."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_chrome_read, to_chrome = os.pipe()
        from_chrome, from_chrome_write = os.pipe()
        # Keep our pipe ends off descriptors 3 and 4, which the child's ends must become.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
                for fd in (to_chrome_read, to_chrome, from_chrome, from_chrome_write)]  # fmt: skip
        for fd in (to_chrome_read, to_chrome, from_chrome, from_chrome_write):
            os.close(fd)
        to_chrome_read, to_chrome, from_chrome, from_chrome_write = ends
        log = profile / "chromium.log"
        arguments = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile / 'data'}",
                     "--remote-debugging-pipe", "about:blank"]  # fmt: skip
        self.pid = os.posix_spawn(
            executable,
            arguments,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, to_chrome_read, 3),
                (os.POSIX_SPAWN_DUP2, from_chrome_write, 4),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            ],
        )
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self.writer, self.reader = to_chrome, from_chrome
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60) -> dict[str, Any]:  # fmt: skip
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
                if "method" in reply:
                    self.events.append(reply)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.reader], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer {method} within {timeout}s")
            chunk = os.read(self.reader, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk

    def send(self, method: str, params: dict | None = None) -> dict[str, Any]:
        return self.call(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True})  # fmt: skip
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"still false after {timeout}s: {expression}")

    def wait_event(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout}s")
            self.send("Runtime.evaluate", {"expression": "0"})  # reads what arrived meanwhile
            time.sleep(0.02)

    def open(self, url: str) -> None:
        """Load url as a new document (via about:blank, so a changed #fragment reloads too)."""
        for target in ("about:blank", url):
            self.events.clear()
            self.send("Page.navigate", {"url": target})
            self.wait_event("Page.loadEventFired")
        self.wait_for("document.documentElement.getAttribute('data-ready') === '1'")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView(); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            event = {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1}
            self.send("Input.dispatchMouseEvent", event)

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: Path, width: int, height: int) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics)
        shot = self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False}
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        for _ in range(100):
            done, _status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.writer)
        os.close(self.reader)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    executable = chromium()
    session = Browser(executable, tmp_path_factory.mktemp("chromium"))
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """Two real runs of the sample through the state store: the second has history and a trend."""
    folder = tmp_path_factory.mktemp("runs")
    path = folder / "gridrecon.toml"
    path.write_text(
        f'[pms]\nurl = "sqlite:///{SAMPLE / "pms.sqlite"}"\n'
        f'[marketing]\nurl = "sqlite:///{SAMPLE / "marketing.sqlite"}"\n'
        '[report]\ndir = "reports"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    api.run(config, as_of=dt.date(2026, 11, 19))
    _, run = api.run(config, as_of=dt.date(2026, 11, 20))
    return run


@pytest.fixture(scope="module")
def doctored(tmp_path_factory) -> Path:
    """The golden result (history, waivers, hostile names) written as a run folder."""
    return write_run_folder(golden_result(), tmp_path_factory.mktemp("doctored"))


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.2f}%"


# -- without a browser ----------------------------------------------------------------------------


def test_the_page_is_self_contained() -> None:
    page = render_html(golden_result())
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:|//)""", page, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)", page, re.IGNORECASE)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count("<script") == 2  # the data block and the page's own script


def test_hostile_text_cannot_close_the_script_blocks() -> None:
    page = render_html(golden_result())
    data = page.split('<script type="application/json" id="report-data">', 1)[1]
    data = data.split("</script>", 1)[0]
    assert "<" not in data and ">" not in data  # so neither "</script>" nor "<!--" can occur
    body = json.loads(data)
    assert HOSTILE["close"] in body["columns"]["asset_name"]
    assert "window.__pwned" not in page.replace(data, "")


def test_an_inconclusive_run_shows_why_and_no_figures() -> None:
    result = sample_result()
    result.findings = result.findings.iloc[0:0]
    result.metrics = result.metrics.iloc[0:0]
    result.status = "inconclusive"
    result.notes = ["inconclusive: pms returned no line rows"]
    page = render_html(result)
    assert 'id="run-notes"' in page and "inconclusive: pms returned no line rows" in page
    assert 'data-value="0"' in page  # the counters, at zero


# -- in Chromium ----------------------------------------------------------------------------------


def test_the_figures_shown_equal_summary_json(browser: Browser, run_folder: Path) -> None:
    summary = json.loads((run_folder / "summary.json").read_text(encoding="utf-8"))
    browser.open((run_folder / "report.html").as_uri())
    shown = browser.evaluate(
        "Array.from(document.querySelectorAll('[data-metric]')).map(e => ({org: e.dataset.org,"
        " scope: e.dataset.scope, type: e.dataset.assetType, metric: e.dataset.metric,"
        " value: e.dataset.value, text: e.textContent.trim()}))"
    )
    metrics = {(m["org_code"], m["scope"], m["asset_type"]): m for m in summary["metrics"]}
    assert len(shown) == 3 * len({(o, s) for o, s, _ in metrics}) * 3  # every org row, 3 types
    compared = 0
    for cell in shown:
        row = metrics.get((cell["org"], cell["scope"], cell["type"]))
        expected = row[cell["metric"]] if row else None
        assert cell["text"] == percent(expected), cell
        assert cell["value"] == ("" if expected is None else str(expected)), cell
        compared += row is not None
    assert compared == len(metrics) * 3
    for asset_type in ("substation", "line", "transformer"):
        for metric in ("linkage_rate", "consistency_rate", "timeliness_rate"):
            expected = metrics[("*", "all", asset_type)][metric]
            figure = browser.evaluate(
                f"document.getElementById('metric-{asset_type}-{metric}').textContent.trim()"
            )
            assert figure == percent(expected), (asset_type, metric)
    counts = summary["findings"]
    assert browser.evaluate("+document.getElementById('count-open').textContent") == counts["open"]
    assert (
        browser.evaluate("+document.getElementById('count-waived').textContent") == counts["waived"]
    )
    by_rule = browser.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('#changes td[data-state=open]'))"
        ".map(td => [td.closest('tr').dataset.rule, +td.dataset.value]))"
    )
    assert {k: v for k, v in by_rule.items() if v} == counts["by_rule"]
    # the table lists exactly the open findings at first
    assert (
        int(browser.evaluate("document.getElementById('findings-count').dataset.count"))
        == (counts["open"])
    )
    # and the second run knows the first: a trend of two runs
    assert browser.evaluate("document.getElementById('trend-chart').dataset.runs") == "2"
    assert browser.evaluate("document.querySelectorAll('#trend-chart polyline').length") == len(
        counts["by_rule"]
    )


def test_choosing_a_rule_and_typing_a_search_narrow_the_table(
    browser: Browser, doctored: Path
) -> None:
    findings = json.loads((doctored / "findings.json").read_text(encoding="utf-8"))
    current = [f for f in findings if f["state"] != "resolved" and not f["waived"]]
    browser.open((doctored / "report.html").as_uri())
    count = "+document.getElementById('findings-count').dataset.count"
    assert browser.evaluate(count) == len(current)

    browser.evaluate(
        "(() => { const s = document.getElementById('filter-rule'); s.value = 'ATTR_MISMATCH';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    mismatches = [f for f in current if f["rule_id"] == "ATTR_MISMATCH"]
    assert 0 < browser.evaluate(count) == len(mismatches) < len(current)
    assert set(browser.evaluate(
        "Array.from(document.querySelectorAll('#findings tbody tr')).map(r => r.dataset.rule)"
    )) == {"ATTR_MISMATCH"}  # fmt: skip
    assert "rule=ATTR_MISMATCH" in browser.evaluate("location.hash")  # a link to this view

    browser.type("#filter-q", "锦绣花园")  # real key input into the search box
    wanted = [f for f in mismatches if "锦绣花园" in (f["asset_name"] or "")]
    browser.wait_for(f"{count} === {len(wanted)}")
    assert 0 < len(wanted) < len(mismatches)

    browser.click("#filter-reset")
    browser.wait_for(f"{count} === {len(current)}")


def test_the_url_fragment_sets_the_filters(browser: Browser, doctored: Path) -> None:
    findings = json.loads((doctored / "findings.json").read_text(encoding="utf-8"))
    resolved = [f for f in findings if f["state"] == "resolved"]
    browser.open((doctored / "report.html").as_uri() + "#state=resolved")
    assert browser.evaluate("document.getElementById('filter-state').value") == "resolved"
    rows = browser.evaluate(
        "Array.from(document.querySelectorAll('#findings tbody tr')).map(r => r.dataset.findingId)"
    )
    assert sorted(rows) == sorted(f["finding_id"] for f in resolved)
    # an org filter on a city finds its counties' findings
    browser.open((doctored / "report.html").as_uri() + "#org=37401&state=all&size=500")
    in_county = [f for f in findings if f["org_code"] == "3740101"
                 and not (f["waived"] and f["state"] != "resolved")]  # fmt: skip
    assert browser.evaluate("+document.getElementById('findings-count').dataset.count") == len(
        in_county
    )


def test_clicking_a_header_sorts_the_table(browser: Browser, doctored: Path) -> None:
    browser.open((doctored / "report.html").as_uri() + "#rule=INVALID_VALUE")
    browser.click("#findings th[data-sort=asset_name]")
    names = browser.evaluate(
        "Array.from(document.querySelectorAll('#findings tbody td.name')).map(td => td.textContent)"
    )
    assert names == sorted(names) and len(names) > 2
    browser.click("#findings th[data-sort=asset_name]")
    again = browser.evaluate(
        "Array.from(document.querySelectorAll('#findings tbody td.name')).map(td => td.textContent)"
    )
    assert again == sorted(names, reverse=True)


def test_waived_findings_are_counted_and_listed_apart(browser: Browser, doctored: Path) -> None:
    findings = json.loads((doctored / "findings.json").read_text(encoding="utf-8"))
    counts = json.loads((doctored / "summary.json").read_text(encoding="utf-8"))["findings"]
    apart = sorted(f["finding_id"] for f in findings if f["waived"] and f["state"] != "resolved")
    browser.open((doctored / "report.html").as_uri())
    for key in ("open", "new", "resolved", "waived"):
        shown = browser.evaluate(f"+document.getElementById('count-{key}').dataset.value")
        assert shown == counts[key], key
    assert counts["waived"] == len(apart) == 2
    listed = browser.evaluate(
        "Array.from(document.querySelectorAll('#waived tbody tr')).map(r => r.dataset.findingId)"
    )
    assert sorted(listed) == apart
    main = browser.evaluate(
        "Array.from(document.querySelectorAll('#findings tbody tr')).map(r => r.dataset.findingId)"
    )
    assert not set(main) & set(apart)


def test_hostile_names_render_as_text_and_nothing_runs(browser: Browser, doctored: Path) -> None:
    browser.open((doctored / "report.html").as_uri() + "#q=0000hostile&size=50")
    injected = browser.evaluate(
        "({pwned: window.__pwned || null, imgs: document.querySelectorAll('img').length,"
        " scripts: document.scripts.length,"
        " stray: document.querySelectorAll('#findings td script, #findings td img').length})"
    )
    assert injected == {"pwned": None, "imgs": 0, "scripts": 2, "stray": 0}
    assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    names = browser.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('#findings tbody tr'))"
        ".map(r => [r.dataset.findingId, r.querySelector('td.name').textContent]))"
    )
    for number, key in enumerate(HOSTILE):
        assert names[f"0000hostile{number:05d}"] == CLEANED.get(key, HOSTILE[key]), key
    visible = browser.evaluate("document.body.innerText")
    assert HOSTILE["script"] in visible and HOSTILE["emoji"] in visible


def test_the_report_speaks_english_with_lang_en(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_result(), lang="en"), encoding="utf-8")
    browser.open(page.as_uri())
    assert browser.evaluate("document.documentElement.lang") == "en"
    assert browser.evaluate("document.querySelector('h1').textContent") == (
        "Grid asset archive reconciliation"
    )
    first_rule = browser.evaluate("document.querySelector('#findings tbody td').textContent")
    assert (
        first_rule == "Archive overdue ARCHIVE_OVERDUE"
    )  # sorted by rule, as the contract lists them


def test_a_screenshot_shows_the_report(browser: Browser, tmp_path: Path) -> None:
    result = golden_result()
    result.findings = result.findings[~result.findings["finding_id"].str.startswith("0000hostile")]
    page = tmp_path / "report.html"
    page.write_text(render_html(result), encoding="utf-8")
    browser.open(page.as_uri())
    shot = tmp_path / "report.png"
    browser.screenshot(shot, 1200, 1900)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    if UPDATE:  # the README's picture, refreshed with the golden files
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
