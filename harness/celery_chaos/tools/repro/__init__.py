"""``celery-chaos repro``: kill *your* app's worker mid-task and say what your configuration does.

The repro is an ordinary scenario built in code (``app``) and run through
:func:`celery_chaos.run.runner.run_scenario`: the same backend, nemesis, watcher and checker as
the suite. Nothing in your configuration is overridden unless asked with ``--set``; only the
broker URL is replaced by the harness's own broker (the harness must own the broker to inspect
and fault it), and the result backend by one of its kind that the harness runs (``--results
app`` keeps yours: a backend the workers cannot reach is then ``result_not_stored``).
``spec`` parses the inputs, ``probes`` judges what the task left behind, ``verdict`` says what
happened and why, ``run`` ties them together.
"""

from celery_chaos.tools.repro.app import AppView, build_scenario, inspect_app, scenario_name
from celery_chaos.tools.repro.probes import judged_by_run, read_store_invariant
from celery_chaos.tools.repro.run import ReproRun, run_repro
from celery_chaos.tools.repro.spec import (
    EXIT_OK,
    EXIT_UNSAFE,
    EXIT_UNUSABLE,
    FAULTS,
    FaultKind,
    RedisProbe,
    ReproError,
    ReproSpec,
    SqlProbe,
    load_spec,
    merge,
    parse_assignment,
    parse_settings,
    parse_trigger,
    probe_invariant,
)
from celery_chaos.tools.repro.verdict import Verdict, settings_lines, verdict_of

__all__ = [
    "EXIT_OK",
    "EXIT_UNSAFE",
    "EXIT_UNUSABLE",
    "FAULTS",
    "AppView",
    "FaultKind",
    "RedisProbe",
    "ReproError",
    "ReproRun",
    "ReproSpec",
    "SqlProbe",
    "Verdict",
    "build_scenario",
    "inspect_app",
    "verdict_of",
    "load_spec",
    "merge",
    "parse_assignment",
    "parse_settings",
    "parse_trigger",
    "probe_invariant",
    "judged_by_run",
    "read_store_invariant",
    "run_repro",
    "scenario_name",
    "settings_lines",
]
