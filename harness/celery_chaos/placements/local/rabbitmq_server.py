"""A private ``rabbitmq-server`` node on 127.0.0.1: its own node name, epmd, ports, data and user.

Nothing is shared with a system RabbitMQ or with another run:

- its own ``epmd`` on a free port (``ERL_EPMD_PORT``), started in the foreground in its own
  process group and stopped with the node, so two runs never register in the same epmd;
- a unique node name (``chaos-<hex>@localhost``), free AMQP and distribution ports bound to
  127.0.0.1 only, and a free port range for the CLI's own distribution listener;
- ``HOME`` pointed at the node's directory, holding a private ``.erlang.cookie`` (3.10
  deprecates ``RABBITMQ_ERLANG_COOKIE``; the file works for server and ``rabbitmqctl`` alike);
- a private ``rabbitmq.conf``, ``rabbitmq-env.conf``, ``enabled_plugins`` (no plugins: the
  management plugin adds start-up time and its counters are sampled, while ``rabbitmqctl`` asks
  the queue processes directly), data and log directories, and a plugins directory holding only
  the applications the broker needs (:mod:`.rabbitmq_plugins`: a second less to boot);
- a random administrator user created by the node itself at first boot (``default_user``), so
  the ``guest`` account never exists, not even for a moment.

Debian's ``/usr/sbin/rabbitmq-server`` is a wrapper that insists on running as root/rabbitmq and
switches user; the real scripts live in ``/usr/lib/rabbitmq/bin`` and run as whoever calls them.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import amqp
import psutil

from celery_chaos.brokers.rabbitmq import (
    RabbitMQBroker,
    advanced_config,
    connect,
    login_works,
    rabbitmq_conf,
)
from celery_chaos.brokers.rabbitmq_inspection import ctl_failure
from celery_chaos.core.scenario_parts import BrokerSpec
from celery_chaos.placements.local import processes
from celery_chaos.placements.local.rabbitmq_plugins import link_core_plugins
from celery_chaos.placements.local.state import start_time
from celery_chaos.placements.ports import free_port

READY_DEADLINE = 60.0
STOP_GRACE = 15.0
CTL_TIMEOUT = 60.0
ERL_CALL_TIMEOUT = 30.0
CLI_GRACE = 2.0  # seconds for a rabbitmqctl VM's leftovers to exit after SIGKILL
SBIN_ENV = "CHAOS_RABBITMQ_SBIN"  # a directory holding rabbitmq-server and rabbitmqctl
DEBIAN_SBIN = "/usr/lib/rabbitmq/bin"
INSTALL_HINT = "install it (Debian/Ubuntu: apt-get install rabbitmq-server)"
# Set on the node and its epmd: "<pid>:<start time>" of the harness process that owns them, so
# `cleanup` can find nodes whose harness died (kill -9) without touching a live run's nodes.
OWNER_ENV = "CHAOS_RABBITMQ_OWNER"


class RabbitMQUnavailable(processes.ServerUnavailable):
    """No rabbitmq-server/epmd binaries, or the node would not start."""


def find_rabbitmq() -> tuple[Path, str]:
    """The directory holding ``rabbitmq-server`` and ``rabbitmqctl``, and the ``epmd`` binary."""
    candidates = [os.environ.get(SBIN_ENV), DEBIAN_SBIN]
    on_path = shutil.which("rabbitmq-server")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    sbin = next(
        (
            Path(c)
            for c in candidates
            if c and (Path(c) / "rabbitmq-server").is_file() and (Path(c) / "rabbitmqctl").is_file()
        ),
        None,
    )
    if sbin is None:
        raise RabbitMQUnavailable(f"rabbitmq-server not found: {INSTALL_HINT}")
    epmd = shutil.which("epmd") or _erts_epmd()
    if epmd is None:
        raise RabbitMQUnavailable(f"epmd (Erlang) not found: {INSTALL_HINT}")
    return sbin, epmd


def _erts_epmd() -> str | None:
    found = sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))
    return str(found[-1]) if found else None


def find_erl_call() -> str | None:
    """Erlang's ``erl_call`` (erl_interface, shipped with every Erlang), or None."""
    found = sorted(Path("/usr/lib/erlang").glob("lib/erl_interface-*/bin/erl_call"))
    return shutil.which("erl_call") or (str(found[-1]) if found else None)


def epmd_names(port: int) -> set[str]:
    """Node names registered in the epmd on ``port`` (empty if it does not answer): the epmd
    protocol's NAMES_REQ, a cheap readiness probe that starts no Erlang VM."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"\x00\x01n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return set()
    return set(re.findall(r"^name (\S+) at port", data[4:].decode(errors="replace"), re.M))


def owner_marker(pid: int) -> str:
    return f"{pid}:{start_time(pid):.2f}"  # never psutil's create_time: see state.start_time


def orphans() -> list[psutil.Process]:
    """Processes of RabbitMQ nodes (and their epmd) whose owning harness process is gone."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            owner = proc.environ().get(OWNER_ENV)
        except psutil.Error:
            continue
        if not owner:
            continue
        pid = int(owner.split(":")[0])
        try:
            alive = owner_marker(pid) == owner
        except psutil.Error:
            alive = False
        if not alive:
            found.append(proc)
    return found


def kill_orphans() -> list[str]:
    """SIGKILL every orphaned node's process group (after a crashed run); one line per kill."""
    killed = []
    for proc in orphans():
        try:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            killed.append(f"rabbitmq pid {proc.pid} ({proc.name()})")
        except (ProcessLookupError, psutil.Error):
            continue
    return killed


class RabbitMQServer:
    """One private RabbitMQ node with its own directory; restartable on the same ports."""

    vhost = "/"  # a node of one scenario (a shared node gives each its own: rabbitmq_shared.py)

    def __init__(self, name: str, workdir: Path, consumer_timeout: float | None = None):
        self.name = name
        self.consumer_timeout = consumer_timeout
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        self.short_name = f"chaos-{token}"
        self.nodename = f"{self.short_name}@localhost"
        self.user = f"chaos-{token}"
        self.password = secrets.token_hex(16)
        self.port = self.dist_port = self.epmd_port = self.ctl_port = 0
        self.process: subprocess.Popen | None = None
        self.epmd: subprocess.Popen | None = None
        self.log_path = workdir / f"{name}.log"  # the start script's console output
        self.startup_seconds: float | None = None
        # Links to the applications the broker needs (rabbitmq_plugins.py); None: the package's.
        self.plugins_dir: Path | None = None
        # Told about every process started (node and epmd; the run's state file records them).
        self.on_spawn: Callable[[subprocess.Popen], None] | None = None

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}//"

    @property
    def node_log(self) -> Path:
        """The node's own log file (boot steps, connection closes, errors)."""
        return self.workdir / "log" / f"{self.nodename}.log"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "mnesia"

    # --- files and environment -------------------------------------------------------
    def _write_files(self, sbin: Path) -> None:
        cookie = self.workdir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(20))
            cookie.chmod(0o400)
        (self.workdir / "rabbitmq-env.conf").write_text("")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        config = self.workdir / "rabbitmq.conf"
        config.write_text(rabbitmq_conf(self.user, self.password, self.consumer_timeout))
        config.chmod(0o600)
        (self.workdir / "advanced.config").write_text(advanced_config(self.consumer_timeout))
        if self.plugins_dir is None:
            self.plugins_dir = link_core_plugins(sbin, self.workdir / "plugins")

    def env(self) -> dict[str, str]:
        """The environment of the node and of every ``rabbitmqctl`` aimed at it."""
        only_loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        env = dict(os.environ)
        env.update(
            HOME=str(self.workdir),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CTL_DIST_PORT_MIN=str(self.ctl_port),
            RABBITMQ_CTL_DIST_PORT_MAX=str(self.ctl_port + 10),
            RABBITMQ_MNESIA_BASE=str(self.data_dir),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_CONFIG_FILE=str(self.workdir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.workdir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.workdir / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=f"-start_epmd false {only_loopback}",
            RABBITMQ_CTL_ERL_ARGS=f"-start_epmd false {only_loopback}",
        )
        if self.plugins_dir is not None:
            env["RABBITMQ_PLUGINS_DIR"] = str(self.plugins_dir)
        env.pop("RABBITMQ_ERLANG_COOKIE", None)
        env[OWNER_ENV] = owner_marker(os.getpid())
        return env

    # --- lifecycle -------------------------------------------------------------------
    def start(self, keep_ports: bool = False) -> None:
        """Start epmd and the node (retrying on a port clash) and wait until it serves AMQP."""
        sbin, epmd = find_rabbitmq()
        self._write_files(sbin)
        for _ in range(3):
            if not keep_ports:
                self.port, self.dist_port, self.ctl_port = free_port(), free_port(), free_port()
            began = time.monotonic()
            self._start_epmd(epmd, keep_ports)
            self.process = processes.spawn(
                [str(sbin / "rabbitmq-server")], self.log_path, env=self.env(), cwd=self.workdir
            )
            if self.on_spawn is not None:
                self.on_spawn(self.process)
            if self._wait_ready(time.monotonic() + READY_DEADLINE):
                self.startup_seconds = time.monotonic() - began
                return
            self._stop_node(signal.SIGKILL)
            if keep_ports:
                break
            self._stop_epmd()
        raise RabbitMQUnavailable(
            f"{self.name}: rabbitmq-server did not start (see {self.log_path} and {self.node_log})"
        )

    def _start_epmd(self, epmd: str, keep_ports: bool) -> None:
        if self.epmd is not None and self.epmd.poll() is None:
            return
        if not keep_ports or not self.epmd_port:
            self.epmd_port = free_port()
        self.epmd = processes.spawn(
            [epmd, "-port", str(self.epmd_port)], self.workdir / "epmd.log", env=self.env()
        )
        if self.on_spawn is not None:
            self.on_spawn(self.epmd)

    def _wait_ready(self, deadline: float) -> bool:
        """Registered in our epmd, then an AMQP login with our user succeeds: both cheap polls
        from Python. (``rabbitmqctl await_startup`` answers the same question but each call boots
        a CLI Erlang VM, about 1 s of CPU, and fails at once while the node is not registered.)
        The listener opens after queue recovery, so a login proves the node serves AMQP."""
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if self.epmd is None or self.epmd.poll() is not None:
                return False
            if self.short_name in epmd_names(self.epmd_port) and self._login_works():
                return True
            time.sleep(0.02)
        return False

    def _login_works(self) -> bool:
        return login_works("127.0.0.1", self.port, self.user, self.password)

    def broker(self, spec: BrokerSpec, log: Callable[[str], None]) -> RabbitMQBroker:
        """This node as the scenario's broker (workers reach it at the same URL)."""
        return RabbitMQBroker(spec, self, self.url, log=log)

    @staticmethod
    def missing() -> str | None:
        """Why no node can start here (no rabbitmq-server or epmd), or None."""
        try:
            find_rabbitmq()
        except RabbitMQUnavailable as error:
            return str(error)
        return None

    def restart_detail(self) -> str:
        took = self.startup_seconds or 0.0
        return (
            f"RabbitMQ node SIGKILLed and restarted on port {self.port}"
            f" (data directory kept; up again in {took:.1f}s)"
        )

    def discard(self) -> None:
        """Data, config and cookie go; the node's own log stays with the run's report."""
        self.remove(keep_logs=True)

    def connection(self) -> amqp.Connection:
        """A connected py-amqp client (for inspection and tests)."""
        return connect("127.0.0.1", self.port, self.user, self.password)

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl`` against this node; its stdout, or :class:`RabbitMQUnavailable`.

        Refused while our epmd is down: the CLI would start an ``epmd -daemon`` of its own
        (``-start_epmd false`` does not stop it), which outlives everything. The CLI's Erlang VM
        runs in a process group of its own, stopped with whatever of it is left once it answered
        (or did not answer in time)."""
        if self.epmd is None or self.epmd.poll() is not None:
            raise RabbitMQUnavailable(f"{self.name}: the node is not running")
        sbin, _ = find_rabbitmq()
        cmd = [str(sbin / "rabbitmqctl"), "-q", "-n", self.nodename, *args]
        cli = subprocess.Popen(
            cmd, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = cli.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RabbitMQUnavailable(f"rabbitmqctl {args[0]}: no answer in {timeout:g}s") from None
        finally:
            processes.stop(cli, sig=signal.SIGKILL, grace=CLI_GRACE)
        if cli.returncode != 0:
            raise RabbitMQUnavailable(ctl_failure(args, stdout, stderr))
        return stdout

    def erl(self, expression: str, timeout: float = ERL_CALL_TIMEOUT) -> str:
        """Evaluate Erlang ``expression`` in the node through ``erl_call`` (milliseconds, no VM
        to boot: :mod:`~celery_chaos.brokers.rabbitmq_erl`); its stdout, or
        :class:`RabbitMQUnavailable`. The cookie is read from the node's ``HOME``, never passed
        on a command line other users can read."""
        erl_call = find_erl_call()
        if erl_call is None or self.epmd is None or self.epmd.poll() is not None:
            raise RabbitMQUnavailable(f"{self.name}: no erl_call, or the node is not running")
        try:
            done = subprocess.run(
                [erl_call, "-n", self.nodename, "-fetch_stdout", "-e"], input=expression + "\n",
                env=self.env(), capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RabbitMQUnavailable(f"erl_call: no answer in {timeout:g}s") from None
        if done.returncode != 0:
            raise RabbitMQUnavailable(f"erl_call failed: {(done.stderr or done.stdout)[:200]}")
        return done.stdout

    def pids(self) -> list[int]:
        """Every live process of this node and its epmd, with the port programs the node runs
        in sessions of their own (``erl_child_setup``, ``inet_gethost``): for leak checks."""
        found = set()
        for process in filter(None, (self.process, self.epmd)):
            found.update(processes.group_members(process))
        for pid in list(found):
            with contextlib.suppress(psutil.Error):
                found.update(child.pid for child in psutil.Process(pid).children(recursive=True))
        return sorted(found)

    def _stop_node(self, sig: int) -> None:
        """SIGTERM makes RabbitMQ 3.10 shut down gracefully (its own signal handler), without
        the cost of a ``rabbitmqctl stop`` VM; the group is SIGKILLed after the grace period."""
        if self.process is not None:
            processes.stop(self.process, sig=sig, grace=STOP_GRACE)
            self.process = None

    def _stop_epmd(self) -> None:
        if self.epmd is not None:
            processes.stop(self.epmd, sig=signal.SIGKILL, grace=2)
            self.epmd = None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the node (gracefully by default) and its epmd. Idempotent."""
        self._stop_node(sig)
        self._stop_epmd()

    def remove(self, keep_logs: bool = False) -> None:
        """Stop and delete the node's directory (data, logs, cookie, config); with
        ``keep_logs`` the ``log`` folder stays (a run's report keeps the node's own log), every
        secret and the data go."""
        self.stop(signal.SIGKILL)
        if not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        for entry in self.workdir.iterdir() if self.workdir.exists() else []:
            if entry.name != "log":
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def restart(
        self, sig: int = signal.SIGKILL, keep_data: bool = True, down_for: float = 0.0
    ) -> None:
        """Crash the node (SIGKILL by default) and start it again on the same ports and epmd,
        ``down_for`` s later.

        With ``keep_data`` durable queues and persistent messages survive (what Celery declares
        and publishes by default); without it the data directory is wiped, like a Redis broker
        without persistence, and the node recreates only its user at boot.
        """
        self._stop_node(sig)
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        time.sleep(down_for)
        self.start(keep_ports=True)
