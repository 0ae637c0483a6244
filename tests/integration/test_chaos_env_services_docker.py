"""``chaos_env`` with ``services.postgres`` on the docker backend, on a host whose ``psql`` is out
of reach ($CHAOS_PG_BIN names an empty folder): setup SQL, the container's readiness, the
invariants and the test's own reads all go through the container's ``psql`` (``docker exec``),
and worker containers write rows through ``DATABASE_URL``. In a pytest subprocess, as a user's
run would be."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.placements.docker.images import DEFAULT_POSTGRES_IMAGE, docker_client
from celery_chaos.services import postgres

from tests.integration.docker_support import require_images, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
pytest_plugins = ["pytester"]

TESTS = """
import pytest
from celery_chaos.services import postgres
from celery_chaos.testing import assert_verdicts

ROWS = "CREATE TABLE rows (task_id text PRIMARY KEY)"
OF_TEST = "SELECT count(*) FROM rows WHERE task_id IN ({task_ids})"


@pytest.mark.chaos(
    services={"postgres": {}},
    setup=[{"sql": ROWS}],
    invariants=[
        {"name": "one-row-per-task", "sql": OF_TEST, "expect": 1},
        {"name": "no-rows", "sql": "SELECT count(*) FROM rows", "expect": 0},
    ],
    workers={"count": 1, "concurrency": 2},
)
def test_rows_in_the_postgres_container_read_without_a_host_psql(chaos_env):
    with pytest.raises(postgres.PostgresError, match="no psql"):
        postgres.psql_binary()  # so every read below is the container's psql
    task = chaos_env.dispatch("sample_tasks.tasks.record_row")
    assert chaos_env.wait_quiescent(timeout=60)
    verdicts = chaos_env.verdicts()
    assert_verdicts(verdicts, ok=1, invariant_violations=1)
    judged = {i["name"]: i for i in verdicts.invariants}
    assert judged["one-row-per-task"]["value"] == 1 and judged["one-row-per-task"]["held"]
    assert verdicts.offenders("invariant_violations") == ["invariant no-rows = 1 (expected 0)"]
    sql = f"SELECT count(*) FROM rows WHERE task_id = '{task}'"
    assert postgres.scalar(chaos_env.database_url, sql) == 1
    with pytest.raises(postgres.PostgresError, match='relation "nowhere" does not exist'):
        postgres.scalar(chaos_env.database_url, "SELECT count(*) FROM nowhere")
"""


@pytest.fixture(autouse=True)
def _images() -> None:
    require_images()
    have = {tag for image in docker_client().images.list() for tag in image.tags}
    if DEFAULT_POSTGRES_IMAGE not in have:
        unavailable(f"image not built: {DEFAULT_POSTGRES_IMAGE}")


def test_chaos_env_postgres_container_without_a_host_psql(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "no-postgres-binaries"
    empty.mkdir()
    monkeypatch.setenv(postgres.BIN_ENV, str(empty))
    pytester.makepyfile(test_docker_rows=TESTS)
    result = pytester.runpytest_subprocess(
        "--chaos-backend", "docker", "--chaos-report-dir", "out", timeout=280
    )
    result.assert_outcomes(passed=1)
