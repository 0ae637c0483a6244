"""The one place that words why a run did not pass: per-task lines, unmet expectations, the
pytest failure text and ``assert_verdicts``. Console, junit, summary and pytest all call these."""

from __future__ import annotations

from celery_chaos.core.checker import VERDICTS, Attempt, TaskReport, Verdicts
from celery_chaos.core.conclusion import INCONCLUSIVE, ScenarioResult, failure_message, unmet_line
from celery_chaos.core.expectations import evaluate
from celery_chaos.core.scenario_base import Range
from celery_chaos.report.mask import mask_text

TASK_LINES = 20


def _attempt_text(attempt: Attempt) -> str:
    where = f" on {attempt.worker}" if attempt.worker else ""
    if attempt.state:
        end = attempt.state
    elif attempt.died is not None:
        at = f" at {attempt.last_checkpoint}" if attempt.last_checkpoint else ""
        why = attempt.exit_reason or (
            f"fault {attempt.interrupted_by}" if attempt.interrupted_by is not None else ""
        )
        end = f"died{at}" + (f" ({why})" if why else "")
    else:
        end = "still running"
    return f"attempt {attempt.attempt}{where}: {end}"


def describe_task(task: TaskReport) -> str:
    """One line per task: its verdicts, then what happened to each attempt."""
    head = f"#{task.index} " if task.index is not None else "(unexpected) "
    parts = [f"{head}{task.task}[{task.task_id}]: {', '.join(task.verdicts)}"]
    parts += [_attempt_text(a) for a in task.attempts] or ["never started"]
    if task.in_broker:
        parts.append("in broker: " + ", ".join(task.in_broker))
    if task.failures:
        parts.append("failures: " + ", ".join(task.failures))
    return "; ".join(parts)


def describe_tasks(verdicts: Verdicts, limit: int = TASK_LINES) -> list[str]:
    """Per-task lines, offenders (anything but ``ok``) first, at most ``limit`` of them."""
    tasks = sorted(verdicts.tasks, key=lambda t: t.verdicts == ["ok"])
    lines = [describe_task(t) for t in tasks[:limit]]
    if len(tasks) > limit:
        lines.append(f"... and {len(tasks) - limit} more (see the report's result.json)")
    return lines


def counts_text(verdicts: Verdicts | None) -> str:
    if verdicts is None:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in verdicts.counts.items() if v) or "none"


def _verdict_lines(verdicts: Verdicts) -> list[str]:
    lines = [f"all verdicts: {counts_text(verdicts)}"]
    lines += [f"broker: {note}" for note in verdicts.broker_notes]
    return lines + ["tasks:"] + [f"  {line}" for line in describe_tasks(verdicts)]


def assert_verdicts(verdicts: Verdicts, **expected: int | dict[str, int] | Range) -> None:
    """Assert verdict counts like a scenario's ``expect`` (``lost=0``, ``ok={"min": 2}``); the
    AssertionError lists each unmet expectation with its offenders, why each broken finding
    happened (the verdicts' explanation lines, when they carry them) and every task's verdicts."""
    __tracebackhide__ = True
    unknown = sorted(set(expected) - set(VERDICTS))
    if unknown:
        raise TypeError(f"unknown verdict {unknown[0]!r}; expected one of {', '.join(VERDICTS)}")
    rules = {
        k: v if isinstance(v, int | Range) else Range.model_validate(v) for k, v in expected.items()
    }
    unmet = [r for r in evaluate(rules, verdicts.counts) if not r.met]
    if not unmet:
        return
    lines = ["verdicts not as expected:"]
    lines += [f"  {unmet_line(verdicts, u)}" for u in unmet]
    lines += [f"explained: {line}" for line in _why(verdicts, {u.verdict for u in unmet})]
    raise AssertionError(mask_text("\n".join(lines + _verdict_lines(verdicts))))


def _why(verdicts: Verdicts, broken: set[str]) -> list[str]:
    """The explanation lines of the broken verdicts (a line starts with its verdict); when none
    is about them (``ok`` fell short because a task was lost), every line."""
    about = [line for line in verdicts.explanations if line.split(" ", 1)[0] in broken]
    return (about or verdicts.explanations)[:TASK_LINES]


def scenario_failure(result: ScenarioResult, replay: str) -> str:
    """Why a scenario item did not pass: unmet expectations or the fault that never landed,
    per-task verdicts, how to replay it."""
    what = "inconclusive" if result.status == INCONCLUSIVE else "expectations not met"
    label = "why" if result.status == INCONCLUSIVE else "unmet"
    lines = [
        f"scenario {result.scenario.name}: {what} (backend {result.backend}, seed {result.seed})",
        f"{label}: {failure_message(result)}",
    ]
    if result.verdicts is not None:
        lines += _verdict_lines(result.verdicts)
    lines += [f"explained: {line}" for line in result.explanations[:TASK_LINES]]
    lines += [f"replay: {replay}", f"report: {result.report_dir}"]
    return mask_text("\n".join(lines))
