"""repro's view of the app read on another interpreter (``--python``): the probe answers what the
in-process import answers (the task's options, its route, the app's own result backend), with
the repro's ``--set`` overrides applied there first. The interpreter here is the harness's own
(run as a separate process through the same staging); the app's own Celery 5.2.7 is in
tests/integration/test_python_option.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from celery import Celery
from celery_chaos.tools.audit.app_probe import consumed_queue
from celery_chaos.tools.repro import ReproError, ReproSpec, inspect_app

APP = (
    "from celery import Celery\n"
    "app = Celery('shop', broker='amqp://guest@localhost//', backend='redis://localhost/3')\n"
    "app.conf.task_routes = {'shop.charge': {'queue': 'payments'}}\n"
    "@app.task(acks_late=True)\n"
    "def charge(order_id):\n"
    "    return order_id\n"
    "@app.task\n"
    "def notify(order_id):\n"
    "    return order_id\n"
)


def spec(**given: object) -> ReproSpec:
    fields = {"app": "shop:app", "task": "shop.charge", "fault": "kill_child", "at": "seconds:1"}
    return ReproSpec.model_validate(fields | given)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "shop.py").write_text(APP)
    return tmp_path


def routed_app(default: str = "celery") -> Celery:
    """A fresh app (routing creates the queues it names: each case starts without them)."""
    app = Celery("r", set_as_current=False)
    app.conf.task_routes = {"a.routed": {"queue": "payments"}}
    app.conf.task_default_queue = default
    return app


def test_the_route_is_the_consumed_queue_or_the_default() -> None:
    assert consumed_queue(routed_app(), "a.routed", [], {}, ["payments", "other"]) == "payments"
    assert consumed_queue(routed_app(), "a.routed", [], {}, ["other"]) == "other"  # -Q's first
    assert consumed_queue(routed_app(), "a.routed", [], {}) is None  # workers consume celery
    assert consumed_queue(routed_app("main"), "a.plain", [], {}) == "main"


@pytest.mark.parametrize("python", [None, sys.executable])
def test_the_foreign_import_reads_what_the_one_in_process_reads(
    shop: Path, python: str | None
) -> None:
    asked = spec(worker_args=["-Q", "payments"], celery={"task_acks_late": False})
    view = inspect_app(asked, shop, python)
    assert view.queue == "payments"
    assert (view.policy.acks_late, view.policy.own) == (True, {"acks_late"})
    assert view.settings["task_acks_late"] is False  # the --set override, applied there
    assert view.result_backend == "redis://localhost/3"
    sys.modules.pop("shop", None)


@pytest.mark.parametrize("python", [None, sys.executable])
def test_a_workflows_members_are_routed_in_file_order(shop: Path, python: str | None) -> None:
    workflow = {"chain": [{"task": "shop.notify"}, {"task": "shop.charge", "args": [1]}]}
    view = inspect_app(spec(workflow=workflow, worker_args=["-Q", "payments,celery"]), shop, python)
    assert view.workload is not None
    first, second = view.workload["chain"]
    assert "options" not in first  # the client's own default queue
    assert second["options"] == {"queue": "payments"}
    sys.modules.pop("shop", None)


def test_an_unregistered_task_is_one_line_naming_the_registered(shop: Path) -> None:
    with pytest.raises(ReproError) as raised:
        inspect_app(spec(task="shop.chrage"), shop, sys.executable)
    assert str(raised.value) == (
        "--task shop.chrage: not registered in shop:app (registered: shop.charge, shop.notify)"
    )


def test_an_app_that_does_not_import_there_is_an_app_error(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text("import no_such_module\n")
    with pytest.raises(ReproError) as raised:
        inspect_app(spec(), tmp_path, sys.executable)
    assert str(raised.value).startswith("--app shop:app") and "no_such_module" in str(raised.value)
