"""pytest plugin: scenario YAML files as test items, and the ``chaos_env`` fixture.

Registered through the ``pytest11`` entry point, so it is active wherever celery-chaos is
installed. At import time it needs only pytest and the standard library: the harness (Celery,
Redis, pydantic) is imported inside hooks and fixtures, so a run that never touches chaos pays
nothing for it.

Which YAML files are scenarios: a ``*.yaml``/``*.yml`` file is collected when it is named on the
command line, or lies under a folder listed in the ``chaos_scenario_paths`` ini option (default:
``scenarios``, relative to the ini file's folder, else the current folder), and its top level has
both ``name`` and ``workload``. So ``pytest scenarios/`` runs the suite, while ``pytest tests/``
never picks up YAML fixtures or CI workflows.

Outcomes: expectations met -> passed; unmet -> failed, naming the unmet expectations, the
offending tasks, every task's verdicts and the seed to replay with; with ``--chaos-strict`` (or
the ``chaos_strict`` ini option, or the scenario's ``strict: true``) a non-zero anomaly verdict
the scenario's expectations do not name -> failed too (``unclaimed: ...``); a fault that was
skipped or failed (status ``inconclusive``) -> failed, naming the fault; the backend cannot
inject a fault, or an optional extra (gevent, eventlet) is not installed -> skipped with the
reason; the environment broke (status ``error``) -> error at setup. A ``chaos_env`` test that
passed although a fault it armed never landed gets an error at teardown.

Long scenarios (a ``timeout`` over :data:`LONG_SECONDS`, e.g. the nightly storm) carry the
``long`` marker and are deselected unless asked for: ``--chaos-long``, a ``-m`` expression about
``long``, or the file named on the command line.

pytest is the ``pytest`` extra's (``pip install 'celery-chaos[pytest]'``); imported without it,
this module refuses in one line naming the extra.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import pytest
except ImportError:  # pytest loads its pytest11 entry point itself; this is a direct import
    raise ImportError(
        "celery_chaos.pytest_plugin needs pytest, which celery-chaos installs with its pytest"
        " extra: pip install 'celery-chaos[pytest]'"
    ) from None

if TYPE_CHECKING:
    from celery_chaos.core.conclusion import ScenarioResult
    from celery_chaos.core.scenario import Scenario
    from celery_chaos.run.session import ChaosSession
    from celery_chaos.testing import ChaosEnv, EnvironmentCache

YAML_SUFFIXES = (".yaml", ".yml")
SCENARIO_KEYS = ("name", "workload")
DEFAULT_SCENARIO_PATHS = ["scenarios"]
LONG_SECONDS = 300.0  # a scenario allowed longer than this is ``long`` (pytest-timeout's usual)

_SESSION = pytest.StashKey["ChaosSession"]()
_EXPLICIT = pytest.StashKey[set[Path]]()
_NAMES = pytest.StashKey[dict[str, Path]]()
_CALL_FAILED = pytest.StashKey[bool]()


class ChaosFailure(Exception):
    """A scenario ran and an expectation was not met (rendered without a traceback)."""


# --- options -------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("celery-chaos", "celery-chaos scenarios and fixtures")
    group.addoption(
        "--chaos-backend",
        choices=("local", "docker"),
        default="local",
        help="where brokers and workers run: local processes (default) or docker containers",
    )
    group.addoption(
        "--chaos-report-dir",
        default="reports",
        metavar="DIR",
        help="write run folders to DIR/<timestamp>/ (relative to the ini file; default: reports)",
    )
    group.addoption(
        "--chaos-broker",
        choices=("redis", "rabbitmq"),
        default=None,
        help="the broker every environment and scenario runs on (default: chaos_env follows"
        " the broker_url of its workers' app, amqp -> rabbitmq; scenario files their broker.kind)",
    )
    group.addoption(
        "--chaos-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed for random triggers/targets; a failure prints the seed to replay it",
    )
    group.addoption(
        "--chaos-strict",
        action="store_true",
        default=False,
        help="fail a scenario whose non-zero anomaly verdict (lost, pending, failed,"
        " stuck_locks, worker_crashes, ...) its expect does not name",
    )
    group.addoption(
        "--chaos-long",
        action="store_true",
        default=False,
        help=f"also run long scenarios (timeout over {LONG_SECONDS:g} s, marker 'long'),"
        " deselected by default",
    )
    parser.addini(
        "chaos_strict",
        type="bool",
        default=False,
        help="run every scenario strict, as --chaos-strict does",
    )
    parser.addini(
        "chaos_scenario_paths",
        type="linelist",
        default=DEFAULT_SCENARIO_PATHS,
        help="folders whose *.yaml/*.yml scenario files are collected (default: scenarios)",
    )


def pytest_configure(config: pytest.Config) -> None:
    _refuse_old_celery()
    config.addinivalue_line(
        "markers",
        "chaos(celery={...}, workers={...}, broker={...}, faults=[...], results=...,"
        " services={...}, setup=[...], invariants=[...]): settings of the chaos_env environment"
        " (tests with equal settings share one); also set on scenario items",
    )
    config.addinivalue_line(
        "markers",
        f"long: a scenario allowed over {LONG_SECONDS:g} s; deselected unless --chaos-long",
    )


def _refuse_old_celery() -> None:
    """At start, before a test module imports the harness (which loads Celery): an app's Celery
    older than the harness works with ends the session in one line, exit 2."""
    from celery_chaos.run.interpreter import InterpreterError, check_own_celery

    try:
        check_own_celery()
    except InterpreterError as error:
        pytest.exit(f"celery-chaos: {error} (pytest -p no:celery_chaos runs without it)", 2)


def _base_dir(config: pytest.Config) -> Path:
    """Where relative option paths start: the ini file's folder, else the invocation folder
    (without an ini file pytest's rootdir can be the scenario folder itself)."""
    return config.inipath.parent if config.inipath else config.invocation_params.dir


def chaos_session(config: pytest.Config) -> ChaosSession:
    """This process's celery-chaos state, created on first use."""
    if _SESSION not in config.stash:
        from celery_chaos.run.session import ChaosSession

        report_dir = Path(config.getoption("chaos_report_dir"))
        config.stash[_SESSION] = ChaosSession(
            backend=config.getoption("chaos_backend"),
            report_dir=_base_dir(config) / report_dir,
            seed=config.getoption("chaos_seed"),
            broker=config.getoption("chaos_broker"),
            app_broker_kind=_app_broker_kind,
        )
        strict = config.getoption("chaos_strict") or config.getini("chaos_strict")
        config.stash[_SESSION].options.strict = bool(strict)
    return config.stash[_SESSION]


def _app_broker_kind(app_spec: str) -> str | None:
    """``rabbitmq`` or ``redis`` from the app's own ``broker_url``; None if it cannot say (the
    app does not import: the preflight reports that with its own message)."""
    from celery_chaos.agent.apps import AppImportError, import_app
    from celery_chaos.tools.audit import broker_kind

    try:
        return broker_kind(import_app(app_spec, Path.cwd()).conf.broker_url)
    except AppImportError:
        return None


def names_long(markexpr: str) -> bool:
    """Whether a ``-m`` expression names the ``long`` marker (a word, not a substring: ``-m 'not
    belongs'`` does not ask for long scenarios)."""
    return "long" in re.findall(r"[\w.]+", markexpr)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect long scenarios unless asked for (see the module docstring)."""
    asked = config.getoption("chaos_long") or names_long(config.getoption("markexpr") or "")
    if asked:
        return
    explicit = _explicit_files(config)
    dropped = [
        item
        for item in items
        if isinstance(item, ScenarioItem)
        and item.get_closest_marker("long")
        and item.path.resolve() not in explicit
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def pytest_sessionfinish(session: pytest.Session) -> None:
    chaos = session.config.stash.get(_SESSION, None)
    if chaos is not None:
        chaos.finish()


# --- collecting scenario files -------------------------------------------------------------


def _explicit_files(config: pytest.Config) -> set[Path]:
    """Files named on the command line (or in testpaths), node ids stripped."""
    if _EXPLICIT not in config.stash:
        base = config.invocation_params.dir
        config.stash[_EXPLICIT] = {(base / arg.split("::")[0]).resolve() for arg in config.args}
    return config.stash[_EXPLICIT]


def _scenario_roots(config: pytest.Config) -> list[Path]:
    base = _base_dir(config)
    return [(base / line).resolve() for line in config.getini("chaos_scenario_paths")]


def _wanted(config: pytest.Config, path: Path) -> bool:
    resolved = path.resolve()
    if resolved in _explicit_files(config):
        return True
    return any(resolved.is_relative_to(root) for root in _scenario_roots(config))


def _looks_like_scenario(path: Path) -> bool:
    """A mapping with ``name`` and ``workload``; unparseable files count, so that collecting
    them reports the YAML error instead of silently skipping a broken scenario."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return True
    return isinstance(data, dict) and all(key in data for key in SCENARIO_KEYS)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in YAML_SUFFIXES or not _wanted(parent.config, file_path):
        return None
    if not _looks_like_scenario(file_path):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


def _shown(config: pytest.Config, path: Path) -> str:
    """``path`` as the user would type it: relative to the current folder when inside it."""
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)


class ScenarioFile(pytest.File):
    """One scenario YAML file; a malformed one is a collection error naming file and field."""

    def collect(self) -> Iterator[pytest.Item]:
        from celery_chaos.core.scenario import load_file
        from celery_chaos.core.scenario_base import ScenarioError
        from celery_chaos.run.preflight import preflight

        shown = _shown(self.config, self.path)
        try:
            scenario = load_file(self.path)
            preflight(scenario, str(self.path), cwd=_base_dir(self.config))
        except ScenarioError as error:
            raise self.CollectError(str(error).replace(str(self.path), shown, 1)) from None
        seen = self.config.stash.setdefault(_NAMES, {})
        other = seen.setdefault(scenario.name, self.path)
        if other != self.path:
            raise self.CollectError(
                f"{shown}: name: duplicate scenario name {scenario.name!r}"
                f" (also in {_shown(self.config, other)})"
            )
        yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)


class ScenarioItem(pytest.Item):
    """Runs its scenario during setup (an environment failure is then an *error*, not a
    failure), and checks the expectations as the test itself."""

    def __init__(self, *, scenario: Scenario, **kwargs: Any):
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result: ScenarioResult | None = None
        self.add_marker("chaos")
        if scenario.timeout > LONG_SECONDS:
            self.add_marker("long")

    def setup(self) -> None:
        self.result = result = chaos_session(self.config).run(self.scenario)
        self.user_properties.append(("chaos_seed", result.seed))
        self.user_properties.append(("chaos_report", str(result.report_dir)))
        if result.status in ("not_runnable", "skipped"):
            raise pytest.skip.Exception(result.reason, _use_item_location=True)
        if result.status == "error":  # failing in setup makes it an error, not a failure
            from celery_chaos.report.mask import mask_text

            pytest.fail(
                f"scenario {self.name} could not run on the {result.backend} backend:"
                f" {mask_text(result.reason)}\nreport: {result.report_dir}",
                pytrace=False,
            )

    def runtest(self) -> None:
        assert self.result is not None
        if self.result.status in ("failed", "inconclusive"):
            from celery_chaos.report.messages import scenario_failure

            raise ChaosFailure(scenario_failure(self.result, self._replay()))

    def _replay(self) -> str:
        assert self.result is not None
        backend = self.config.getoption("chaos_backend")
        extra = f" --chaos-backend {backend}" if backend != "local" else ""
        return f"pytest '{self.nodeid}' --chaos-seed {self.result.seed}{extra}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ChaosFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"


# --- outcomes of tests written in Python ------------------------------------------------------


def _unsupported(excinfo: pytest.ExceptionInfo[BaseException] | None) -> bool:
    """Whether a test raised the harness's Unsupported (loaded only if the harness was used)."""
    base = sys.modules.get("celery_chaos.placements.base")
    return excinfo is not None and base is not None and excinfo.errisinstance(base.Unsupported)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A fault the backend cannot inject, raised in a test body, is a skip with the reason;
    the call's outcome is kept for the environment's report."""
    report = yield
    if call.when == "call" and _unsupported(call.excinfo):
        assert call.excinfo is not None
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {call.excinfo.value}")
    if call.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


# --- fixtures for tests written in Python --------------------------------------------------


@pytest.fixture(scope="session")
def chaos_environments(pytestconfig: pytest.Config) -> Iterator[EnvironmentCache]:
    """The session's environment cache; stops every environment at the end."""
    chaos = chaos_session(pytestconfig)
    yield chaos.envs
    chaos.envs.close()


@pytest.fixture
def chaos_env(
    request: pytest.FixtureRequest, chaos_environments: EnvironmentCache
) -> Iterator[ChaosEnv]:
    """Broker + ledger + workers with the settings of the closest ``@pytest.mark.chaos``,
    shared with other tests of the session that ask for the same settings."""
    from celery_chaos.core.scenario_base import ScenarioError
    from celery_chaos.placements import BackendError, Unsupported

    marker = request.node.get_closest_marker("chaos")
    if marker is not None and marker.args:
        pytest.fail("@pytest.mark.chaos takes keyword arguments only", pytrace=False)
    chaos = chaos_session(request.config)
    try:
        env = chaos.open_env(dict(marker.kwargs) if marker else {}, request.node.nodeid)
    except Unsupported as error:
        pytest.skip(str(error))
    except BackendError as error:
        pytest.fail(f"chaos environment could not start: {error}", pytrace=False)
    except (ScenarioError, ValueError) as error:
        pytest.fail(str(error), pytrace=False)
    request.node.add_report_section(
        "setup",
        "chaos",
        f"environment {env.id} (test {env.tests_run + 1} on it), seed {env.seed}"
        f" (replay: --chaos-seed {env.seed}), broker {env.scenario.broker.kind},"
        f" report: {env.backend.run_dir}",
    )
    try:
        yield env
    finally:
        failed = request.node.stash.get(_CALL_FAILED, None)
        result = chaos.close_env(env, "failed" if failed else None)
    if result is not None and result.status == "inconclusive" and failed is False:
        pytest.fail(f"inconclusive: {result.reason}", pytrace=False)
