"""The HTML report's pure parts: the timeline layout and the page's context (no browser here;
tests/integration/test_html_report.py opens real pages in Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.report import html
from celery_chaos.report import timeline as tl

ROOT = Path(__file__).resolve().parents[2]
WORKER = "w0@chaos-test"
HOSTILE = "<script>window.__pwned=1</script>"


def poison_history(attempts: int) -> list[dict]:
    """A poison message: every attempt kills its own pool process, which Celery replaces."""
    ts = 1_000.0
    events = [
        {"type": "worker_started", "ts": ts, "worker": WORKER, "pid": 100},
        {"type": "worker_ready", "ts": ts + 1, "worker": WORKER, "pid": 100},
        {"type": "dispatch", "ts": ts + 1.1, "task_id": "t-0", "task": "poison", "index": 0,
         "args": [], "kwargs": {"note": HOSTILE}},
    ]  # fmt: skip
    for number in range(1, attempts + 1):
        pid, start = 1000 + number, ts + 1.2 + number * 0.1
        events += [
            {"type": "pool_process_started", "ts": start - 0.01, "pid": pid, "ppid": 100},
            {"type": "attempt_start", "ts": start, "task_id": "t-0", "task": "poison",
             "attempt": number, "worker": WORKER, "pid": pid, "redelivered": number > 1},
            {"type": "checkpoint", "ts": start + 0.01, "task_id": "t-0", "attempt": number,
             "name": "boom", "pid": pid},
            {"type": "process_exit", "ts": start + 0.05, "task_id": "t-0", "attempt": number,
             "pid": pid, "worker": WORKER, "reason": "process exited with no fault injected"},
        ]  # fmt: skip
    events.append({"type": "run_end", "ts": events[-1]["ts"] + 1, "reason": "deadline"})
    return events


def test_a_poison_loop_draws_every_attempt_on_one_pool_lane():
    timeline = tl.build(poison_history(300))
    assert len(timeline.bars) == 300
    assert {bar.ending for bar in timeline.bars} == {"killed"}
    kinds = [lane.kind for lane in timeline.lanes]
    assert kinds == ["nemesis", "client", "broker", "worker", "pool"]
    assert "300 pool process(es)" in timeline.lanes[-1].detail
    assert len(timeline.links) == 299
    assert all(abs(link.latency - 0.05) < 1e-6 for link in timeline.links)
    assert all(len(bar.ticks) == 1 for bar in timeline.bars)
    assert timeline.start == -1.1  # the worker started 1.1 s before the first dispatch


def test_faults_get_one_marker_each_and_pause_a_band_until_resume():
    events = poison_history(2)
    ts = events[2]["ts"]
    events[3:3] = [
        {"type": "fault", "ts": ts + 0.01, "fault": 0, "kind": "pause", "status": "injected",
         "worker": WORKER, "hits": [], "offset": 0.0},
        {"type": "fault", "ts": ts + 0.05, "fault": 1, "kind": "resume", "status": "injected",
         "worker": WORKER, "hits": [], "offset": 0.05},
        {"type": "fault", "ts": ts + 0.06, "fault": 2, "kind": "kill_child", "status": "missed",
         "worker": None, "hits": []},
    ]  # fmt: skip
    timeline = tl.build(events)
    assert [f.label for f in timeline.faults] == ["#0 pause", "#1 resume", "#2 kill_child"]
    assert [f.css for f in timeline.faults][-1] == "fault-missed"
    (band,) = timeline.bands
    assert (band.label, band.t0, band.t1) == ("paused", 0.01, 0.05)
    assert {timeline.lanes[i].worker for i in band.lanes} == {WORKER}


def test_tags_name_anomalous_tasks_once_per_place():
    events = poison_history(1)
    events.insert(3, {**events[2], "task_id": "t-1", "index": 1})
    events.insert(4, {**events[2], "task_id": "t-2", "index": 2})
    timeline = tl.build(events, tags={"t-1": ["LOST"], "t-2": ["LOST"], "t-0": ["FAILED"]})
    labels = sorted(tag.label for tag in timeline.tags)
    assert labels == ["FAILED", "LOST x2"]
    assert all(bar.anomalous for bar in timeline.bars)


def _result(tmp_path: Path, history: list[dict], **fields) -> Path:
    folder = tmp_path / "scenario"
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps({"scenario": "s", **fields}))
    with open(folder / "history.jsonl", "w") as out:
        out.writelines(json.dumps(event) + "\n" for event in history)
    return folder


def test_user_text_is_escaped_in_the_page(tmp_path):
    folder = _result(tmp_path, poison_history(3), description=HOSTILE, status="failed",
                     reason=HOSTILE, verdicts={"lost": 1})  # fmt: skip
    page = html.render_scenario(folder)
    assert HOSTILE not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page


def test_the_scenario_on_the_page_replays_as_a_scenario_file(tmp_path):
    source = ROOT / "scenarios" / "03-ack-late-reject-child-kill.yaml"
    scenario = parse_scenario(yaml.safe_load(source.read_text()), str(source))
    folder = _result(tmp_path, [], config=scenario.model_dump(mode="json"), seed=5,
                     backend="local")  # fmt: skip
    result, events = html.load_scenario_dir(folder)
    context = html.scenario_context(result, events)
    assert parse_scenario(yaml.safe_load(context["scenario_yaml"]), "page") == scenario
    assert context["replay"] == "celery-chaos run s.yaml --seed 5 --backend local"


def test_a_scenario_that_did_not_run_still_gets_a_page(tmp_path):
    folder = _result(tmp_path, [], status="not_runnable", reason="partition needs docker")
    page = html.write_scenario_html(folder).read_text()
    assert "not runnable" in page and "partition needs docker" in page
    index = html.write_index_html(tmp_path, [folder]).read_text()
    assert 'href="scenario/report.html"' in index


def test_every_tag_word_is_finished_and_a_duplicate_says_how_often_it_ran() -> None:
    """No tag word carries an unformatted placeholder (``RAN {times} TIMES`` was never
    formatted); a duplicated task's word counts its successful runs."""
    from celery_chaos.report.html import TAG_WORDS, tag_word

    assert all("{" not in word for word in TAG_WORDS.values())
    task = {"attempts": [{"state": "SUCCESS"}] * 9}
    assert tag_word("duplicate_executions", task) == "RAN 9 TIMES"
    assert tag_word("duplicate_executions", {"attempts": [{"state": "SUCCESS"}] * 2}) == "RAN TWICE"
