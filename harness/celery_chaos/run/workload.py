"""The workload: which tasks are dispatched, with which arguments and options, and when."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from celery import Celery, chain, chord, group
from celery.canvas import Signature

from celery_chaos.core import history as h
from celery_chaos.core.scenario import Scenario
from celery_chaos.core.scenario_parts import WorkloadItem
from celery_chaos.core.workflows import layout, members, tree_leaves
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
    # A workflow's first member carries the whole tree (core.workflows.layout) and the
    # dispatches of every member: sending it sends the workflow, Celery publishes the rest.
    workflow: dict[str, Any] | None = None
    members: list[Dispatch] = field(default_factory=list)
    workflow_id: str | None = None  # set on every member of a workflow
    revoke: dict[str, Any] | None = None  # the item's ``revoke`` (at/after_fault, delay)
    revoked: bool = False


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
    """Flatten the workload into dispatches with fresh task ids, in index order (a workflow's
    members take consecutive indexes, in the order they appear in the file)."""
    dispatches: list[Dispatch] = []
    for item in scenario.workload:
        for _ in range(item.count):
            if item.task is None:
                first = len(dispatches)
                ids = [(first + n, str(uuid.uuid4())) for n in range(item.members)]
                dispatches.extend(plan_workflow(item, ids))
                continue
            dispatches.append(task_dispatch(item, len(dispatches), str(uuid.uuid4())))
    return dispatches


def task_dispatch(
    item: WorkloadItem, index: int, task_id: str, at: float | None = None
) -> Dispatch:
    """One task of a workload item (not a workflow) as dispatch ``index``, sent at ``at`` (else
    the item's own offset), ``{n}`` in its arguments filled with ``index``."""
    assert item.task is not None
    return Dispatch(
        index=index,
        task_id=task_id,
        task=item.task,
        args=_fill(item.args, index),
        kwargs=_fill(item.kwargs, index),
        options=item.options.model_dump(exclude_none=True),
        at=item.at if at is None else at,
        revoke=item.revoke.model_dump() if item.revoke else None,
    )


def plan_workflow(item: WorkloadItem, ids: list[tuple[int, str]]) -> list[Dispatch]:
    """One copy of a chain/group/chord: its tree with the given (index, task id) per member in
    file order, one dispatch per member (the first carries the tree and sends it all)."""
    tree = layout(item, iter(ids))
    tree["workflow"] = str(uuid.uuid4())
    tree["send_options"] = item.options.model_dump(exclude_none=True)
    dispatches = []
    for leaf in tree_leaves(tree):
        leaf["args"], leaf["kwargs"] = (
            _fill(leaf["args"], leaf["index"]),
            _fill(leaf["kwargs"], leaf["index"]),
        )
        dispatches.append(
            Dispatch(
                index=leaf["index"],
                task_id=leaf["task_id"],
                task=leaf["task"],
                args=leaf["args"],
                kwargs=leaf["kwargs"],
                options=leaf["options"],
                at=item.at,
                workflow_id=tree["workflow"],
            )
        )
    dispatches[0].workflow, dispatches[0].members = tree, dispatches
    return dispatches


def make_client(
    broker_url: str, celery_settings: dict[str, Any], results_url: str | None = None
) -> Celery:
    """A Celery app in the harness process with the scenario's settings, used only to send
    (and, with ``results_url``, to set up chords in the result backend as Celery does)."""
    client = Celery("celery_chaos_client", broker=broker_url, set_as_current=False)
    client.conf.update(celery_settings)
    client.conf.broker_url = broker_url
    # Only a chord needs the client to have a backend: a ``celery.result_backend`` setting is
    # the workers' (the harness may run one in its place) and must not make the client connect.
    client.conf.result_backend = results_url
    if results_url:
        # The harness never waits on a result: don't subscribe to result channels (Celery
        # does for every task and group it sends; the pubsub would outlive the servers and
        # complain when the results are collected at exit).
        consumer = client.backend.result_consumer
        consumer.consume_from = consumer.cancel_for = lambda *_args: None
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
    that runs can never look unexpected). A workflow's members are sent with their first."""
    if dispatch.workflow is not None:
        send_workflow(client, ledger, dispatch)
        return
    if dispatch.workflow_id is not None or dispatch.sent:
        return  # a member of a workflow: sent with its first member
    _record_dispatch(ledger, dispatch)
    client.send_task(
        dispatch.task,
        args=dispatch.args,
        kwargs=dispatch.kwargs,
        task_id=dispatch.task_id,
        **_send_options(dispatch.options),
    )
    dispatch.sent = True


def due_time(options: dict[str, Any], now: float) -> float | None:
    """When a task sent at epoch ``now`` with these options may run at the earliest (epoch
    seconds): its countdown or ETA (a scenario's ``eta`` is an offset in seconds, like
    :func:`_send_options` sends it). None: at once. The run may not end before it (run.loop).
    A non-zero countdown wins over an eta, as Celery's ``amqp.as_task_v2`` makes it."""
    countdown, eta = options.get("countdown"), options.get("eta")
    delay = countdown if countdown or eta is None else eta
    return None if delay is None else now + float(delay)


def _record_dispatch(ledger: Ledger, dispatch: Dispatch, **extra: Any) -> None:
    due = due_time(dispatch.options, time.time())
    if due is not None:
        extra["due"] = due
    ledger.record(
        h.DISPATCH,
        task_id=dispatch.task_id,
        task=dispatch.task,
        index=dispatch.index,
        args=dispatch.args,
        kwargs=dispatch.kwargs,
        options=dispatch.options,
        **extra,
    )


def signature(client: Celery, tree: dict[str, Any]) -> Signature:
    """The Celery canvas for a laid-out tree, every task id fixed in advance (so the history
    knows each member before Celery publishes it)."""
    kind = tree["kind"]
    if kind == "task":
        return client.signature(
            tree["task"],
            args=tree["args"],
            kwargs=tree["kwargs"],
            immutable=tree["immutable"],
            task_id=tree["task_id"],
            **_send_options(tree["options"]),
        )
    if kind == "chord":
        header = [signature(client, part) for part in tree["header"]]
        return chord(header, signature(client, tree["body"]), app=client)
    parts = [signature(client, part) for part in tree["children"]]
    return (chain if kind == "chain" else group)(*parts, app=client)


def send_workflow(client: Celery, ledger: Ledger, lead: Dispatch) -> None:
    """Record the workflow (tree and members with positions), every member's dispatch, then
    send the canvas: Celery itself publishes the later members and the chord callback."""
    tree = lead.workflow
    assert tree is not None
    workflow_id = tree["workflow"]
    ledger.record(
        h.WORKFLOW, workflow=workflow_id, kind=tree["kind"], tree=tree, members=members(tree)
    )
    for member in lead.members:
        _record_dispatch(ledger, member, workflow=workflow_id)
    signature(client, tree).apply_async(**_send_options(tree.get("send_options") or {}))
    for member in lead.members:
        member.sent = True


def revoke(client: Celery, ledger: Ledger, dispatch: Dispatch) -> None:
    """Record the revoke, then broadcast it to the workers (``app.control.revoke``)."""
    terminate = bool((dispatch.revoke or {}).get("terminate"))
    ledger.record(h.REVOKE, task_id=dispatch.task_id, index=dispatch.index, terminate=terminate)
    client.control.revoke(dispatch.task_id, terminate=terminate, signal="SIGKILL")
    dispatch.revoked = True
