"""The HTML report as a person sees it: pages produced from real runs (a real pool process
SIGKILLed) opened in a real headless Chromium. They must render without console errors, draw
one bar per attempt and one marker per fault, load nothing from the network, and show user text
(task arguments here carry HTML) as text, never as markup."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from celery_chaos.core import history as h
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.report.html import write_index_html, write_scenario_html
from celery_chaos.run.runner import RunOptions, run_suite

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def _scenario(file: str, **changes: object):
    data = yaml.safe_load((ROOT / "scenarios" / file).read_text(encoding="utf-8"))
    data.update(changes)
    return parse_scenario(data, file)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real suite: a recovered child kill (task arguments carrying HTML) and a lost one."""
    recovered = _scenario(
        "03-ack-late-reject-child-kill.yaml",
        description=f"{HOSTILE} description <b>not bold</b>",
    )
    recovered.workload[0].kwargs["doc_id"] = HOSTILE + "-{n}"
    lost = _scenario("01-defaults-child-kill.yaml")
    options = RunOptions(report_dir=tmp_path_factory.mktemp("reports"), seed=7)
    suite = run_suite([recovered, lost], options, log=lambda line: None)
    assert [r.status for r in suite.results] == ["passed", "passed"], [
        r.reason for r in suite.results
    ]
    dirs = [r.report_dir for r in suite.results]
    pages = {r.scenario.name: write_scenario_html(r.report_dir) for r in suite.results}
    pages["index"] = write_index_html(suite.run_dir, dirs)
    return pages


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Opened:
    """A page opened in Chromium, with every console error, page error and request it made."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1320, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def assert_clean(self) -> None:
        assert self.errors == []
        offline = [u for u in self.requests if not u.startswith(("file:", "data:"))]
        assert offline == [], "the page must not reach the network"
        assert self.page.evaluate("window.__pwned") is None


def _events(page: Path, kind: str) -> list[h.Event]:
    return [e for e in h.read_jsonl(str(page.parent / "history.jsonl")) if e["type"] == kind]


def test_scenario_page_draws_one_bar_per_attempt_and_one_marker_per_fault(run, browser):
    page = run["ack-late-reject-child-kill"]
    opened = Opened(browser, page)
    opened.assert_clean()
    attempts = _events(page, h.ATTEMPT_START)
    assert len(attempts) == 4  # 3 tasks, one killed and run again
    assert opened.count("#timeline rect.bar") == len(attempts)
    assert opened.count("#timeline g.fault-marker") == len(_events(page, h.FAULT)) == 1
    assert opened.count("#timeline rect.bar.ending-killed") == 1
    assert opened.count("#timeline rect.bar.ending-success") == 3
    assert opened.count("#timeline line.tick") == len(_events(page, h.CHECKPOINT))
    # the redelivery of the killed attempt, labelled with its latency
    assert opened.count("#timeline path.link") == 1
    result = json.loads((page.parent / "result.json").read_text())
    (killed,) = [t for t in result["tasks"] if t["outcome"] == "recovered"]
    latency = killed["redelivery_latencies"][0]
    label = opened.page.locator("#timeline text.link-label").text_content()
    # The timeline measures the link from its own event times, result.json rounds to 0.1 ms:
    # the label may differ from it by the last digit shown, never by more.
    shown = label.strip().removeprefix("↻ ")
    seconds = float(shown[:-3]) / 1000 if shown.endswith(" ms") else float(shown[:-2])
    assert abs(seconds - latency) <= (0.0015 if latency < 1 else 0.015), (shown, latency)
    # the page leads with the verdict: passed, recovered 1, and no anomaly
    assert opened.page.locator("h1 .status").inner_text().lower() == "passed"
    assert "recovered 1" in opened.page.locator("#verdicts").inner_text()
    assert opened.count(".no-anomaly") == 1


def test_user_text_is_shown_as_text_never_as_markup(run, browser):
    opened = Opened(browser, run["ack-late-reject-child-kill"])
    opened.assert_clean()
    assert opened.count("img") == 0 and opened.count("b:has-text('not bold')") == 0
    body = opened.page.inner_text("body")
    assert f"{HOSTILE} description <b>not bold</b>" in body
    assert json.dumps(HOSTILE + "-0") in opened.page.locator("table.tasks").inner_text()


def test_hovering_and_clicking_an_attempt_shows_its_details(run, browser):
    opened = Opened(browser, run["ack-late-reject-child-kill"])
    killed = opened.page.locator("#timeline rect.bar.ending-killed")
    killed.hover()
    tooltip = opened.page.locator("#tooltip")
    assert tooltip.is_visible()
    text = tooltip.inner_text()
    task_id = killed.get_attribute("data-task")
    starts = _events(run["ack-late-reject-child-kill"], h.ATTEMPT_START)
    (start,) = [e for e in starts if e["task_id"] == task_id and e["attempt"] == 1]
    assert task_id in text and f"pid: {start['pid']}" in text
    for expected in ("attempt: 1", "redelivered: no", "ended: killed"):
        assert expected in text
    assert "exit reason: SIGKILL by kill_child fault" in text
    killed.click()
    details = opened.page.locator("#details").inner_text()
    assert start["task_id"] in details and "SIGKILL by kill_child fault" in details
    # every attempt of that task is highlighted, and so is its row in the task table
    assert opened.count("#timeline rect.bar.sel") == 2
    assert opened.page.locator("tr.task-row.sel").get_attribute("id") == f"task-{start['task_id']}"
    opened.page.locator("#timeline g.fault-marker").hover()
    assert "kill_child" in tooltip.inner_text() and "injected" in tooltip.inner_text()
    opened.assert_clean()


def test_a_lost_task_leads_the_page_and_links_to_its_task(run, browser):
    page = run["defaults-child-kill"]
    opened = Opened(browser, page)
    opened.assert_clean()
    result = json.loads((page.parent / "result.json").read_text())
    (lost,) = [t for t in result["tasks"] if t["outcome"] == "lost"]
    anomaly = opened.page.locator("li.anomaly[data-verdict='lost']")
    assert "lost: 1" in anomaly.inner_text()
    anomaly.locator(f"a[href='#task-{lost['task_id']}']").click()
    assert opened.page.locator("tr.task-row.sel").get_attribute("data-task") == lost["task_id"]
    assert opened.count("li.anomaly[data-verdict='failed']") == 1  # WorkerLostError
    assert "LOST" in opened.page.locator("#timeline g.tag").first.text_content()
    assert opened.count("#timeline rect.bar") == len(_events(page, h.ATTEMPT_START)) == 2
    assert opened.count("#timeline path.link") == 0  # nothing ever ran it again
    opened.assert_clean()


def test_index_lists_scenarios_in_run_order_with_working_links(run, browser):
    opened = Opened(browser, run["index"])
    opened.assert_clean()
    rows = opened.page.locator("tr.scenario-row")
    assert rows.count() == 2
    assert "ack-late-reject-child-kill" in rows.nth(0).inner_text()
    assert "defaults-child-kill" in rows.nth(1).inner_text()
    assert "lost 1" in rows.nth(1).inner_text()
    rows.nth(1).locator("a").click()
    opened.page.wait_for_load_state("load")
    assert opened.page.url.endswith("/defaults-child-kill/report.html")
    assert opened.page.locator("h1").inner_text().startswith("defaults-child-kill")
    opened.assert_clean()


def test_an_inconclusive_run_with_versions_and_a_worker_crash_renders(run, browser, tmp_path):
    """The fields newer runs add (status inconclusive, versions, worker_exit events,
    worker_crashes, broker_notes) are shown when present."""
    source = run["defaults-child-kill"].parent
    folder = tmp_path / "inconclusive"
    shutil.copytree(source, folder)
    result = json.loads((folder / "result.json").read_text())
    worker = _events(run["defaults-child-kill"], h.WORKER_READY)[0]["worker"]
    result["status"] = "inconclusive"
    result["reason"] = "the fault never fired <script>x</script>"
    result["versions"] = {"celery": "5.4.0", "kombu": "5.4.2", "redis-server": "7.2.4"}
    result["verdicts"]["worker_crashes"] = 1
    result["worker_crashes"] = [{"worker": worker, "reason": "exit code -9"}]
    result["broker_notes"] = ["Kombu's unacked_mutex is held for another 287s <b>x</b>"]
    (folder / "result.json").write_text(json.dumps(result))
    history = h.read_jsonl(str(folder / "history.jsonl"))
    end = history[-1]["ts"]
    history.insert(-1, {"type": "worker_exit", "ts": end - 0.1, "worker": worker, "reason": "-9"})
    h.write_jsonl(history, str(folder / "history.jsonl"))
    opened = Opened(browser, write_scenario_html(folder))
    opened.assert_clean()
    assert opened.page.locator("h1 .status").inner_text().lower() == "inconclusive"
    assert "the fault never fired <script>x</script>" in opened.page.inner_text(".reason")
    assert "7.2.4" in opened.page.locator("#versions").inner_text()
    assert worker in opened.page.locator("li.anomaly[data-verdict='worker_crashes']").inner_text()
    assert opened.count("#timeline g.mark-exit") == 1
    notes = opened.page.locator("ul.broker-notes")
    assert notes.is_visible() and "held for another 287s <b>x</b>" in notes.inner_text()


def test_a_few_hundred_attempts_stay_readable(browser, tmp_path):
    """A poison-like history: 300 attempts, each killing its pool process, on two lanes."""
    from tests.unit.test_html_timeline import poison_history

    folder = tmp_path / "poison"
    folder.mkdir()
    h.write_jsonl(poison_history(300), str(folder / "history.jsonl"))
    opened = Opened(browser, write_scenario_html(folder))
    opened.assert_clean()
    assert opened.count("#timeline rect.bar") == 300
    assert opened.count("#timeline text.lane-label") <= 6  # nemesis, client, broker, w0 + 2 pool
    opened.page.click("#zoom-in")
    opened.page.click("#zoom-in")
    assert opened.errors == []


def test_only_non_zero_verdicts_show_the_zeros_are_folded(run, browser):
    """23 badges, mostly zeros, buried the findings: the non-zero ones are shown, the zeros sit
    in a closed <details> that opens on a click."""
    page = run["defaults-child-kill"]
    result = json.loads((page.parent / "result.json").read_text())
    found = {name for name, count in result["verdicts"].items() if count}
    assert found >= {"lost", "failed"}
    opened = Opened(browser, page)
    shown = opened.page.locator("#verdicts > .chips .chip")
    assert sorted(shown.nth(i).get_attribute("title") for i in range(shown.count())) == sorted(
        found
    )
    zeros = opened.page.locator("#zero-verdicts .chip")
    assert zeros.count() == len(result["verdicts"]) - len(found)
    assert not zeros.first.is_visible()
    opened.page.click("#zero-verdicts summary")
    assert zeros.first.is_visible() and "0" in zeros.first.inner_text()
    opened.assert_clean()


def test_each_finding_says_why_in_the_users_terms(run, browser):
    """The lost task's explanation line (core.explain) is under its anomaly, as text."""
    opened = Opened(browser, run["defaults-child-kill"])
    why = opened.page.locator("li.anomaly[data-verdict='lost'] .why").inner_text()
    assert "task_acks_late=False (Celery default)" in why
    assert "kill_child" in why and "would change it: task_acks_late=True" in why
    opened.assert_clean()


def test_a_task_that_ran_nine_times_says_so(browser, tmp_path):
    """A duplicated task is labelled with how many times it ran, not "RAN TWICE"."""
    from celery_chaos.core.checker import check

    folder = tmp_path / "nine"
    folder.mkdir()
    events = [
        {"type": "worker_ready", "ts": 100.0, "worker": "w0@x", "pid": 1},
        {"type": "dispatch", "ts": 100.1, "task_id": "t-9", "task": "work", "index": 0},
    ]
    for n in range(1, 10):
        events += [
            {"type": "attempt_start", "ts": 100 + n, "task_id": "t-9", "task": "work",
             "attempt": n, "worker": "w0@x", "pid": 1, "redelivered": n > 1},
            {"type": "attempt_end", "ts": 100.5 + n, "task_id": "t-9", "attempt": n,
             "state": "SUCCESS", "pid": 1},
        ]  # fmt: skip
    events.append({"type": "run_end", "ts": 111.0, "reason": "quiescent"})
    h.write_jsonl(events, str(folder / "history.jsonl"))
    result = check(events).as_dict() | {"scenario": "nine", "status": "failed"}
    assert result["verdicts"]["duplicate_executions"] == 1
    (folder / "result.json").write_text(json.dumps(result))
    opened = Opened(browser, write_scenario_html(folder))
    opened.assert_clean()
    tag = opened.page.locator("#timeline g.tag").first.text_content()
    assert "RAN 9 TIMES" in tag and "TWICE" not in tag
    item = opened.page.locator("li.anomaly[data-verdict='duplicate_executions']").inner_text()
    assert "ran to completion 9 times" in item


def test_a_broken_invariant_and_an_unstored_result_are_visible(browser, tmp_path):
    """The app's state on the page: a broken invariant leads the anomalies with its value and
    why, the invariants table marks it, and a result_not_stored task names the backend's
    state. Rendered from a checker run on a synthetic history (a browser check, not a run's)."""
    from celery_chaos.core.checker import check
    from celery_chaos.core.explain_app import app_lines

    from tests.unit.test_invariants_reports import app_state, history

    folder = tmp_path / "app-state"
    folder.mkdir()
    events = history()
    h.write_jsonl(events, str(folder / "history.jsonl"))
    verdicts = check(events, app_state=app_state())
    result = verdicts.as_dict() | {"scenario": "app-state", "status": "failed"}
    result["explanations"] = app_lines(verdicts)
    (folder / "result.json").write_text(json.dumps(result))
    opened = Opened(browser, write_scenario_html(folder))
    opened.assert_clean()
    item = opened.page.locator("li.anomaly[data-verdict='invariant_violations']")
    assert item.is_visible()
    assert "invariant no-stuck-document = 2 (expected 0)" in item.inner_text()
    assert "returned 2, expected 0" in item.locator(".why").inner_text()
    broken = opened.page.locator("table.invariants tr.invariant[data-held='no']")
    assert broken.count() == 1 and broken.is_visible()
    assert "no-stuck-document" in broken.inner_text() and "NO" in broken.inner_text()
    assert opened.count("table.invariants tr.invariant[data-held='yes']") == 1
    unstored = opened.page.locator("li.anomaly[data-verdict='result_not_stored']").inner_text()
    assert "the result backend holds PENDING" in unstored and "task-b" in unstored
