"""Audit's import of the app on another interpreter (``--python``): the app's own packages and
Celery, not the harness's. The import runs in ``app_probe`` there; its answer comes back
as JSON and becomes the same :class:`AppSettings` an import in this process gives."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from celery_chaos.agent.apps import AppImportError
from celery_chaos.tools.audit.app import AppSettings
from celery_chaos.tools.audit.settings import CELERY_DEFAULTS, TASK_OPTIONS
from celery_chaos.tools.audit.strays import Stray

TIMEOUT_SECONDS = 120


def collect_on(
    python: str, spec: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> AppSettings:
    """Import ``spec`` on ``python`` from ``cwd`` (as ``celery -A`` run there would, with
    ``extra_env`` set) and read what the audit needs; raises :class:`AppImportError` when it
    does not import."""
    return settings_of(probe_on(python, spec, cwd, extra_env))


def probe_on(
    python: str,
    spec: str,
    cwd: Path,
    extra_env: dict[str, str] | None = None,
    repro: dict | None = None,
) -> dict:
    """``app_probe``'s answer for ``spec`` on ``python`` (with ``repro``: its overrides applied
    and its routes resolved there too, see ``app_probe.repro_view``)."""
    from celery_chaos.run.interpreter import stage_agent
    from celery_chaos.tools.audit.app_probe import MARK, plain

    wanted = json.dumps(
        {"defaults": plain(dict(CELERY_DEFAULTS)), "options": list(TASK_OPTIONS), "repro": repro}
    )
    with tempfile.TemporaryDirectory(prefix="celery-chaos-audit-") as folder:
        staged = str(stage_agent(Path(folder)))
        env = dict(os.environ) | (extra_env or {})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), staged, env.get("PYTHONPATH")]))
        command = [python, "-m", "celery_chaos.tools.audit.app_probe", spec]
        try:
            done = subprocess.run(command, input=wanted, capture_output=True, text=True, cwd=cwd,
                                  env=env, timeout=TIMEOUT_SECONDS, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise AppImportError(f"{spec}: its import did not end in {TIMEOUT_SECONDS} s") from None
    answers = [line[len(MARK) :] for line in done.stdout.splitlines() if line.startswith(MARK)]
    if not answers:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AppImportError(f"{spec}: cannot import on {python}: {tail}")
    found = json.loads(answers[-1])
    if "import_error" in found:
        raise AppImportError(found["import_error"])
    if "error" in found:
        raise AppImportError(f"{spec}: {found['error']}")
    return found


def settings_of(found: dict) -> AppSettings:
    """The probe's answer as the :class:`AppSettings` an import in this process gives."""
    major, minor = (int(part) for part in found["celery_version"].split(".")[:2])
    strays = [Stray(**stray) for stray in found["strays"]]
    return AppSettings(found["config"], found["tasks"], (major, minor), found["pool"], strays)
