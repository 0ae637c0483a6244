"""The pure halves of two RabbitMQ speed-ups: the plugins closure a local node boots with
(rabbitmq_plugins.py) and the erl_call answers with their fallback to rabbitmqctl
(rabbitmq_erl.py). A real node runs both in tests/integration/test_rabbitmq_server.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery_chaos.brokers import rabbitmq_erl, rabbitmq_inspection
from celery_chaos.placements.local.rabbitmq_plugins import core_plugins, link_core_plugins


def app(plugins: Path, directory: str, name: str, *needs: str) -> None:
    ebin = plugins / directory / "ebin"
    ebin.mkdir(parents=True)
    listed = ",".join(needs)
    (ebin / f"{name}.app").write_text(
        f'{{application, {name}, [{{vsn, "1"}}, {{applications, [kernel,stdlib,{listed}]}}]}}.'
    )


def fake_package(tmp_path: Path) -> Path:
    plugins = tmp_path / "rabbitmq_server-3.10.8" / "plugins"
    app(plugins, "rabbit-3.10.8", "rabbit", "rabbit_common", "ra")
    app(plugins, "rabbitmq_prelaunch-3.10.8", "rabbitmq_prelaunch", "rabbit_common")
    app(plugins, "rabbit_common-3.10.8", "rabbit_common", "recon")
    app(plugins, "ra-2.2.0", "ra", "gen_batch_server")
    app(plugins, "gen_batch_server-0.8.8", "gen_batch_server")
    app(plugins, "recon-2.5.2", "recon")
    app(plugins, "rabbitmq_management-3.10.8", "rabbitmq_management", "rabbit", "cowboy")
    app(plugins, "cowboy-2.8.0", "cowboy")
    return plugins


def test_the_closure_holds_what_rabbit_needs_and_no_optional_plugin(tmp_path: Path) -> None:
    found = core_plugins(fake_package(tmp_path))
    assert found is not None
    assert [d.name for d in found] == [
        "gen_batch_server-0.8.8", "ra-2.2.0", "rabbit-3.10.8", "rabbit_common-3.10.8",
        "rabbitmq_prelaunch-3.10.8", "recon-2.5.2",
    ]  # fmt: skip


def test_a_package_of_ez_archives_keeps_its_own_directory(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "rabbit_common-3.8.0.ez").write_bytes(b"PK")
    assert core_plugins(plugins) is None
    assert core_plugins(tmp_path / "missing") is None


def test_links_are_made_beside_the_real_sbin(tmp_path: Path) -> None:
    plugins = fake_package(tmp_path)
    sbin = plugins.parent / "sbin"
    sbin.mkdir()
    (sbin / "rabbitmq-server").write_text("#!/bin/sh\n")
    target = link_core_plugins(sbin, tmp_path / "node" / "plugins")
    assert target is not None
    assert sorted(p.name for p in target.iterdir() if p.is_symlink()) == sorted(
        d.name for d in core_plugins(plugins) or []
    )
    assert link_core_plugins(sbin, target) == target, "a restart reuses the links"


class Access:
    """A node access with an ``erl`` answering ``stdout`` (or failing) and a ``ctl``."""

    vhost = "/"

    def __init__(self, stdout: str | None):
        self.stdout = stdout
        self.ctl_calls: list[tuple[str, ...]] = []

    def erl(self, expression: str) -> str:
        if self.stdout is None:
            raise RuntimeError("erl_call failed")
        return self.stdout

    def ctl(self, *args: str) -> str:
        self.ctl_calls.append(args)
        return '[{"name":"celery","messages_ready":2,"messages_unacknowledged":1,"consumers":0}]'


ROW = '[{"name":"celery","messages_ready":3,"messages_unacknowledged":0,"consumers":1}]'


@pytest.mark.parametrize(
    ("stdout", "ready", "asked_ctl"),
    [
        (f"{rabbitmq_erl.ANSWER}{ROW}\n{{ok, ok}}", 3, False),  # erl_call answered
        ('{error, "Incomplete form"}', 2, True),  # erl_call ran, the expression did not
        (f"{rabbitmq_erl.ANSWER}not json", 2, True),
        (None, 2, True),  # erl_call failed (node down, no binary)
    ],
)
def test_queue_counts_fall_back_to_rabbitmqctl(
    stdout: str | None, ready: int, asked_ctl: bool
) -> None:
    access = Access(stdout)
    counts = rabbitmq_inspection.queue_counts(access)  # type: ignore[arg-type]
    assert counts["celery"].ready == ready
    assert bool(access.ctl_calls) is asked_ctl


def test_an_access_without_erl_is_asked_through_rabbitmqctl_only() -> None:
    class CtlOnly:
        vhost = "/"

        def ctl(self, *args: str) -> str:
            return "[]"

    assert rabbitmq_erl.queue_rows(CtlOnly(), "/", ("name",)) is None
    assert rabbitmq_inspection.queue_counts(CtlOnly()) == {}  # type: ignore[arg-type]


def test_columns_and_vhost_are_never_spliced_into_erlang_unchecked() -> None:
    access = Access(f"{rabbitmq_erl.ANSWER}[]")
    assert rabbitmq_erl.queue_rows(access, "/", ("name", 'x]), os:cmd("id")')) is None
    assert rabbitmq_erl.queue_rows(access, 'a"b', ("name",)) is None
    assert rabbitmq_erl.queue_rows(access, "a\\b", ("name",)) is None  # an escape in Erlang
    assert rabbitmq_erl.queue_rows(access, "/", ("name",)) == []


@pytest.mark.parametrize(
    ("stdout", "asked_ctl"),
    [
        (f"{rabbitmq_erl.ANSWER}2\n{{ok, ok}}", False),  # erl_call closed them
        ("{error, {undef, rabbit_connection_tracking_handler}}", True),  # another release
        (None, True),  # erl_call failed
    ],
)
def test_closing_every_connection_falls_back_to_rabbitmqctl(
    stdout: str | None, asked_ctl: bool
) -> None:
    access = Access(stdout)
    rabbitmq_inspection.release_unacked(access, [])  # type: ignore[arg-type]
    closed_by_ctl = ("close_all_connections", "-p", "/", rabbitmq_inspection.CLOSE_REASON)
    assert (closed_by_ctl in access.ctl_calls) is asked_ctl
