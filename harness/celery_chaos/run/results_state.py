"""What the app's result backend holds for each task that completed: the data behind the
``result_not_stored`` finding.

Why: Celery's trace sends ``task_postrun`` with SUCCESS even when storing the result raised
(``mark_as_done`` -> "Exception raised outside body"), so a client polling ``AsyncResult`` may
never see the SUCCESS the history records. After the workload, with the workers frozen, the run
reads the backend the workers reported (``worker_ready.result_backend``) for every task whose
attempt stored its result (``attempt_start.stores_result``) and ended SUCCESS.

The unmasked URL comes from the ledger (:data:`agent.results.RAW_URL_KEY`), never from the
history: reports only ever see the masked one. A backend the harness runs is read where the
harness reaches it (the worker's address may be a container's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from celery_chaos.agent import results as agent_results
from celery_chaos.core import history as h
from celery_chaos.placements.worker_command import (
    DJANGO_RESULTS_SQLITE,
    HARNESS_RESULTS_DB,
    RESULTS_SQLITE,
)
from celery_chaos.services import readers

UNREADABLE = "unreadable"
# SQL result tables are read through the run's SQL reader, which returns one number per query:
# each state is a code (0: no row, i.e. PENDING as Celery says of an unknown task).
STATE_CODES = ["PENDING", "SUCCESS", "FAILURE", "RETRY", "STARTED", "REVOKED", "RECEIVED"]
OTHER_CODE = 99
SQL_TABLE = "celery_taskmeta"
DJANGO_TABLE = "django_celery_results_taskresult"  # django-db: read with SQL, no Django here
TIMEOUT_SECONDS = 5


def completed_storing(history: Iterable[dict[str, Any]]) -> list[str]:
    """Task ids with an attempt that stored its result and ended SUCCESS, in history order."""
    storing: set[tuple[str, Any]] = set()
    found: dict[str, None] = {}
    for event in history:
        key = (event.get("task_id"), event.get("attempt"))
        if event.get("type") == h.ATTEMPT_START and event.get("stores_result"):
            storing.add(key)
        elif event.get("type") == h.ATTEMPT_END and event.get("state") == "SUCCESS":
            found.update({str(key[0]): None} if key in storing else {})
    return list(found)


def reported_backend(history: Iterable[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The masked result backend the workers reported and who chose it (the last worker's)."""
    masked = origin = None
    for event in history:
        if event.get("type") == h.WORKER_READY and event.get("result_backend"):
            masked, origin = event["result_backend"], event.get("result_backend_origin")
    return masked, origin


ORIGINS = {
    agent_results.HARNESS: "the harness's, of the app's kind, in place of the app's own",
    agent_results.APP: "the app's own, as results: app asks",
    agent_results.APP_KIND: "the app's own: the harness runs no result backend of this kind",
    agent_results.SCENARIO: "the scenario's results",
}


def describe(history: Iterable[dict[str, Any]]) -> list[str]:
    """The line that says which result backend the workers use (none: no line)."""
    masked, origin = reported_backend(history)
    return [f"results: {masked} ({ORIGINS.get(origin or '', origin)})"] if masked else []


def read_result_states(
    backend: Any, history: list[dict[str, Any]]
) -> tuple[dict[str, str] | None, str | None]:
    """(task_id -> stored state or "unreadable: <why>", masked backend URL); (None, url) when
    the backend is not read: no worker reported one, or results are messages to the caller
    (``rpc://``), which no one but that caller can read afterwards."""
    masked, origin = reported_backend(history)
    if masked is None or backend.ledger is None:
        return None, masked
    raw = backend.ledger.client.get(agent_results.RAW_URL_KEY)
    url = harness_url(backend, raw.decode() if raw else None, origin)
    if url is None or agent_results.kind_of(url) == "rpc":
        return None, masked
    tasks = completed_storing(history)
    if not tasks:
        return {}, masked
    try:
        read = _sql_reader(url) if url.startswith(("db+", "django-db+")) else _celery_reader(url)
    except Exception:  # a kind this process cannot load (django-db without Django): not read
        return None, masked
    return read_states(read, tasks), masked


def harness_url(backend: Any, worker_url: str | None, origin: str | None) -> str | None:
    """The workers' backend as the harness reaches it: the app's own as is; the harness's
    rebuilt on the harness's side of the ledger, the run's folder or PostgreSQL."""
    if worker_url is None or origin not in (agent_results.HARNESS, agent_results.SCENARIO):
        return worker_url
    if origin == agent_results.SCENARIO:
        return backend.results_url()
    kind = agent_results.kind_of(worker_url)
    if kind == "redis":
        return ledger_db_url(backend, HARNESS_RESULTS_DB)
    if kind == "db+postgresql" and "postgres" in backend.service_urls:
        return "db+" + backend.service_urls["postgres"].harness
    if kind == "db":
        return f"db+sqlite:///{harness_files_dir(backend) / RESULTS_SQLITE}"
    if kind == "django-db" and "postgres" in backend.service_urls:
        return "django-db+" + backend.service_urls["postgres"].harness
    if kind == "django-db":
        return f"django-db+sqlite:///{harness_files_dir(backend) / DJANGO_RESULTS_SQLITE}"
    return worker_url


def ledger_db_url(backend: Any, db: int) -> str:
    pool = backend.ledger.client.connection_pool.connection_kwargs
    auth = f":{quote(pool['password'], safe='')}@" if pool.get("password") else ""
    return f"redis://{auth}{pool.get('host', 'localhost')}:{pool.get('port', 6379)}/{db}"


def harness_files_dir(backend: Any) -> Path:
    """The run's folder for worker files as the harness sees it (docker mounts a subfolder)."""
    run_dir = Path(backend.run_dir).resolve()
    seen = backend.worker_files_dir()
    return run_dir if seen == str(run_dir) else run_dir / "worker-files"


def read_states(read: Callable[[str], str], tasks: list[str]) -> dict[str, str]:
    """Each task's stored state; after a first read fails, the rest share its reason (an
    unreachable backend answers no better the second time, and each try may wait)."""
    states: dict[str, str] = {}
    failure: str | None = None
    for task_id in tasks:
        if failure is None:
            try:
                states[task_id] = read(task_id)
                continue
            except Exception as error:  # any backend library's error: the reason, one line
                failure = f"{UNREADABLE}: {type(error).__name__}: {error}".splitlines()[0]
        states[task_id] = failure
    return states


def _sql_reader(url: str) -> Callable[[str], str]:
    """A SQLAlchemy (``db+``) or django-celery-results (``django-db+``) table read with the
    run's SQL reader (psql / sqlite3)."""
    prefix, target = url.split("+", 1)
    table = DJANGO_TABLE if prefix == "django-db" else SQL_TABLE
    cases = " ".join(f"WHEN '{s}' THEN {n}" for n, s in enumerate(STATE_CODES))

    def read(task_id: str) -> str:
        quoted = task_id.replace("'", "''")
        sql = (
            f"SELECT coalesce((SELECT CASE status {cases} ELSE {OTHER_CODE} END FROM {table}"
            f" WHERE task_id = '{quoted}' LIMIT 1), 0)"
        )
        code = int(readers.read_sql(target, sql))
        return STATE_CODES[code] if code < len(STATE_CODES) else "OTHER"

    return read


def _celery_reader(url: str) -> Callable[[str], str]:
    """Any other backend read as a client would: a Celery app's ``backend.get_task_meta``."""
    from celery import Celery

    app = Celery("celery-chaos-results", set_as_current=False)
    app.conf.update(
        result_backend=url,
        redis_socket_timeout=TIMEOUT_SECONDS,
        redis_socket_connect_timeout=TIMEOUT_SECONDS,
        redis_retry_on_timeout=False,
        result_backend_always_retry=False,
    )

    backend = app.backend  # loads the backend's class now: a kind that cannot load raises here

    def read(task_id: str) -> str:
        return str(backend.get_task_meta(task_id).get("status"))

    return read
