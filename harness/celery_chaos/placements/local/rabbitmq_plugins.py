"""A private plugins directory for a local RabbitMQ node: only the applications the broker itself
needs (``rabbit`` and ``rabbitmq_prelaunch`` with everything their ``.app`` files name), none of
the ~50 optional plugins a package ships (management, MQTT, STOMP, federation, ...).

Why: the harness enables no plugin (``enabled_plugins`` is ``[].``), yet at boot the node reads
every application in its plugins directory and scans the modules of those it loads for boot
steps. Measured on RabbitMQ 3.10.8 (Debian, 71 directories, 2 CPUs, medians of 3 boots): 4.53 s
to an AMQP login and 3.74 s of the node's CPU with the package's directory, 3.29 s and 2.74 s
with the 20 it needs (``benchmarks/rabbitmq_node.py`` prints both, alternated). The node is the
same broker: the queue types, the protocol and every setting live in ``rabbit`` and its
dependencies, which are linked as installed.

A package whose plugins are ``.ez`` archives (the generic Unix tarball of older releases) or
whose closure cannot be read keeps its own directory (:func:`core_plugins` returns None).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOTS = ("rabbit", "rabbitmq_prelaunch")
_APP_LISTS = ("applications", "included_applications", "optional_applications")
_VERSION = re.compile(r"-\d[^-]*$")  # rabbit_common-3.10.8 -> rabbit_common


def plugins_dir(sbin: Path) -> Path:
    """The package's plugins directory: ``plugins/`` beside the real ``sbin/`` of
    ``rabbitmq-server`` (Debian links /usr/lib/rabbitmq/bin/* into rabbitmq_server-X/sbin)."""
    return (sbin / "rabbitmq-server").resolve().parent.parent / "plugins"


def app_dependencies(app_file: Path) -> set[str]:
    """The applications an ``.app`` file names (started, included or optional)."""
    text = app_file.read_text(errors="replace")
    found: set[str] = set()
    for key in _APP_LISTS:
        match = re.search(r"\{\s*" + key + r"\s*,\s*\[([^\]]*)\]", text)
        if match:
            found |= {name.strip() for name in match.group(1).split(",") if name.strip()}
    return found


def core_plugins(plugins: Path) -> list[Path] | None:
    """The application directories of ``plugins`` that ``rabbit`` needs (the closure of
    :data:`ROOTS` over their ``.app`` files; Erlang's own applications are not in ``plugins``),
    or None when one of the roots is not an unpacked directory there."""
    if not plugins.is_dir():
        return None
    directories = {_VERSION.sub("", d.name): d for d in plugins.iterdir() if d.is_dir()}
    needed: dict[str, Path] = {}
    todo = list(ROOTS)
    while todo:
        app = todo.pop()
        if app in needed or app not in directories:
            continue
        app_file = directories[app] / "ebin" / f"{app}.app"
        if not app_file.is_file():
            return None
        needed[app] = directories[app]
        todo += sorted(app_dependencies(app_file))
    if any(root not in needed for root in ROOTS):
        return None
    return sorted(needed.values())


def link_core_plugins(sbin: Path, target: Path) -> Path | None:
    """``target`` filled with links to :func:`core_plugins` of the package (the node's
    ``RABBITMQ_PLUGINS_DIR``), or None: the package's own directory stays in use."""
    needed = core_plugins(plugins_dir(sbin))
    if needed is None:
        return None
    target.mkdir(parents=True, exist_ok=True)
    for directory in needed:
        link = target / directory.name
        if not link.is_symlink():
            link.symlink_to(directory, target_is_directory=True)
    return target
