"""The workload: which tasks are dispatched, with which arguments and options, and when."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from celery import Celery

from celery_chaos.core import history as h
from celery_chaos.core.scenario import Scenario
from celery_chaos.ledger import Ledger

INDEX_PLACEHOLDER = "{n}"


@dataclass
class Dispatch:
    """One task to send: ``index`` is its position in the scenario's flattened workload."""

    index: int
    task_id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0
    sent: bool = False


def _fill(value: Any, index: int) -> Any:
    """Replace ``{n}`` in string arguments with the task's index (unique doc ids, emails...)."""
    if isinstance(value, str):
        return value.replace(INDEX_PLACEHOLDER, str(index))
    if isinstance(value, list):
        return [_fill(v, index) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, index) for k, v in value.items()}
    return value


def plan(scenario: Scenario) -> list[Dispatch]:
    """Flatten the workload into dispatches with fresh task ids, in index order."""
    dispatches: list[Dispatch] = []
    for item in scenario.workload:
        options = item.options.model_dump(exclude_none=True)
        for _ in range(item.count):
            index = len(dispatches)
            dispatches.append(
                Dispatch(
                    index=index,
                    task_id=str(uuid.uuid4()),
                    task=item.task,
                    args=_fill(item.args, index),
                    kwargs=_fill(item.kwargs, index),
                    options=options,
                    at=item.at,
                )
            )
    return dispatches


def make_client(broker_url: str, celery_settings: dict[str, Any]) -> Celery:
    """A Celery app in the harness process with the scenario's settings, used only to send."""
    client = Celery("celery_chaos_client", broker=broker_url, set_as_current=False)
    client.conf.update(celery_settings)
    client.conf.broker_url = broker_url
    return client


def _send_options(options: dict[str, Any]) -> dict[str, Any]:
    send = dict(options)
    if "eta" in send:
        send["eta"] = datetime.now(timezone.utc) + timedelta(seconds=send["eta"])
    if "time_limit" in send or "soft_time_limit" in send:
        send["time_limit"] = send.get("time_limit")
        send["soft_time_limit"] = send.get("soft_time_limit")
    return send


def send(client: Celery, ledger: Ledger, dispatch: Dispatch) -> None:
    """Record the dispatch in the history, then publish it (the record comes first, so a task
    that runs can never look unexpected)."""
    ledger.record(
        h.DISPATCH,
        task_id=dispatch.task_id,
        task=dispatch.task,
        index=dispatch.index,
        args=dispatch.args,
        kwargs=dispatch.kwargs,
        options=dispatch.options,
    )
    client.send_task(
        dispatch.task,
        args=dispatch.args,
        kwargs=dispatch.kwargs,
        task_id=dispatch.task_id,
        **_send_options(dispatch.options),
    )
    dispatch.sent = True
