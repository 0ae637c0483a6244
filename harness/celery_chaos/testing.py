"""The public API for tests written in Python: what a test imports, annotates and asserts with.

- :func:`assert_verdicts`: assert verdict counts as a scenario's ``expect`` does; a failure lists
  each unmet expectation with its offending tasks, why each broken finding happened, and every
  task's attempts.
- The ``chaos_env`` fixture's types, for annotations: :class:`ChaosEnv` (the fixture),
  :class:`EnvironmentCache` (``chaos_environments``), :class:`PlannedFault` (what
  ``chaos_env.fault`` returns), :class:`Verdicts` and :class:`TaskReport` (what
  ``chaos_env.verdicts()`` returns), :class:`Unsupported` (a fault this backend cannot inject).
- :func:`scenario` / :class:`ScenarioBuilder`: a scenario built in Python, validated exactly as a
  scenario file is (the same models, the same preflight, the same one-line errors), and
  :func:`run_scenario`, which runs it as ``celery-chaos run`` runs a file and returns its
  :class:`ScenarioResult`.

Everything else in ``celery_chaos`` (``run``, ``core``, ``placements``, ``brokers``, ``report``,
``tools``) is internal and may change between versions; an app's own instrumentation is the
package's top level (``from celery_chaos import install, checkpoint, ...``).

It is for pytest tests (the ``chaos_env`` fixture is the plugin's), and pytest comes with the
``pytest`` extra only: imported where pytest is missing it refuses in one line naming the extra.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from celery_chaos.core.conclusion import ScenarioResult
from celery_chaos.core.scenario import Scenario, parse_scenario
from celery_chaos.core.scenario_base import Range, ScenarioError
from celery_chaos.core.verdicts import TaskReport, Verdicts
from celery_chaos.placements import Unsupported
from celery_chaos.report.messages import assert_verdicts
from celery_chaos.run import runner
from celery_chaos.run.chaos_env import ChaosEnv
from celery_chaos.run.nemesis import PlannedFault
from celery_chaos.run.preflight import preflight
from celery_chaos.run.session import EnvironmentCache


def _require_pytest() -> None:
    """Refuse in one line when pytest is not installed (found, not imported: only the plugin
    imports pytest)."""
    try:
        found = importlib.util.find_spec("pytest")
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ImportError(
            "celery_chaos.testing needs pytest, which celery-chaos installs with its pytest"
            " extra: pip install 'celery-chaos[pytest]'"
        )


_require_pytest()

__all__ = [
    "ChaosEnv",
    "EnvironmentCache",
    "PlannedFault",
    "Range",
    "Scenario",
    "ScenarioBuilder",
    "ScenarioError",
    "ScenarioResult",
    "TaskReport",
    "Unsupported",
    "Verdicts",
    "assert_verdicts",
    "run_scenario",
    "scenario",
]

Expected = int | Mapping[str, int] | Range


class ScenarioBuilder:
    """Builds the mapping a scenario file holds, one section per call (each returns the
    builder), then :meth:`build` validates it with the scenario schema: a builder never checks
    anything itself, so its errors are the file's errors, with ``scenario('name')`` as the file.

    >>> scenario("defaults-child-kill").with_workers(1, concurrency=2).with_workload(
    ...     "sample_tasks.tasks.ingest_document", kwargs={"doc_id": "a", "steps": 5}
    ... ).with_fault("kill_child", when={"task": 0, "checkpoint": "step-3"}).expect(lost=1)
    """

    def __init__(self, name: str, description: str | None = None) -> None:
        self._data: dict[str, Any] = {
            "name": name,
            "description": description or f"{name} (built in Python)",
            "workload": [],
        }

    @property
    def source(self) -> str:
        """How errors name this scenario (where a file's errors name its path)."""
        return f"scenario({self._data['name']!r})"

    def with_celery(self, **settings: Any) -> ScenarioBuilder:
        """Celery settings (``celery:``), merged into those given before."""
        self._data.setdefault("celery", {}).update(settings)
        return self

    def with_workers(self, count: int | None = None, **spec: Any) -> ScenarioBuilder:
        """The workers (``workers:``): ``count`` and any key of the section (``concurrency``,
        ``pool``, ``app``, ``env``, ``args``...), merged into those given before."""
        workers = self._data.setdefault("workers", {})
        workers.update(spec if count is None else {"count": count, **spec})
        return self

    def with_broker(self, kind: str | None = None, **spec: Any) -> ScenarioBuilder:
        """The broker (``broker:``): ``kind`` (redis, rabbitmq) and any key of the section."""
        broker = self._data.setdefault("broker", {})
        broker.update(spec if kind is None else {"kind": kind, **spec})
        return self

    def with_workload(self, task: str | None = None, **item: Any) -> ScenarioBuilder:
        """One workload entry (``workload:``), appended: a task with ``count``, ``args``,
        ``kwargs``, ``options``, ``at``..., or a workflow (``chain=[...]``, ``group=[...]``,
        ``chord={...}``). Tasks are numbered in the order added, as in a file."""
        self._data["workload"].append(item if task is None else {"task": task, **item})
        return self

    def with_fault(
        self,
        kind: str,
        when: Mapping[str, Any] | None = None,
        target: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ScenarioBuilder:
        """One fault (``faults:``), appended: its ``kind``, trigger (``when={"task": 0,
        "checkpoint": "step-3"}``, ``{"at": 1.5}``, ``{"after_fault": 0, "delay": 1}``...),
        ``target`` and options (``duration``, ``headroom``...)."""
        fault: dict[str, Any] = {"kind": kind, **options}
        if when is not None:
            fault["when"] = dict(when)
        if target is not None:
            fault["target"] = dict(target)
        self._data.setdefault("faults", []).append(fault)
        return self

    def expect(self, **counts: Expected) -> ScenarioBuilder:
        """Expected verdict counts (``expect:``): ``lost=0``, ``ok={"min": 2}``."""
        rules = {
            k: v.model_dump(exclude_none=True) if isinstance(v, Range) else v
            for k, v in counts.items()
        }
        self._data.setdefault("expect", {}).update(rules)
        return self

    def expect_when(
        self, when: Mapping[str, str], expect: Mapping[str, Expected], why: str
    ) -> ScenarioBuilder:
        """Expectations that apply instead when every condition holds (``expect_when:``)."""
        rule = {"when": dict(when), "expect": dict(expect), "why": why}
        self._data.setdefault("expect_when", []).append(rule)
        return self

    def with_options(self, **fields: Any) -> ScenarioBuilder:
        """Any other top-level key: ``timeout``, ``settle``, ``seed``, ``strict``, ``results``,
        ``storm``, ``redelivery_threshold``, ``extension_settings``, ``exclusive``."""
        self._data.update(fields)
        return self

    def as_dict(self) -> dict[str, Any]:
        """The mapping a scenario file with these sections would hold."""
        return copy.deepcopy(self._data)

    def build(self, *, check_app: bool = True) -> Scenario:
        """The validated :class:`Scenario`; raises :class:`ScenarioError` (one line naming the
        field) as loading a file does. ``check_app`` also runs the preflight a file gets before
        it runs (Celery setting names, the app imports and registers the workload's tasks)."""
        built = parse_scenario(self.as_dict(), self.source)
        if check_app:
            preflight(built, self.source)
        return built


def scenario(name: str, description: str | None = None) -> ScenarioBuilder:
    """Start building a scenario called ``name`` (lowercase letters, digits, ``_.-``)."""
    return ScenarioBuilder(name, description)


def run_scenario(
    built: Scenario | ScenarioBuilder,
    backend: str = "local",
    *,
    report_dir: Path | str = "reports",
    seed: int | None = None,
    strict: bool = False,
    log: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """Run one scenario as ``celery-chaos run`` does (its report folder under a new
    ``report_dir/<timestamp>/``) and return the result: ``status`` (passed, failed,
    inconclusive, not_runnable, skipped, error), ``reason``, ``verdicts`` (carrying their
    explanation lines, for :func:`assert_verdicts`), ``expectations``, ``seed``, ``report_dir``.
    ``log`` hears the progress lines the command line prints (default: silent)."""
    if isinstance(built, ScenarioBuilder):
        built = built.build()
    options = runner.RunOptions(backend, Path(report_dir), seed, strict=strict)
    run_root = runner.new_run_dir(options.report_dir)
    result = runner.run_scenario(built, options, run_root, log or (lambda _: None))
    if result.verdicts is not None:
        result.verdicts.explanations = list(result.explanations)
    return result
