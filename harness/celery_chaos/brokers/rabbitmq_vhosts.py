"""A scenario's own virtual host on a RabbitMQ node that several scenarios share: added with
full rights for the node's administrator, deleted with everything in it (queues, messages,
connections). Through ``erl_call`` where the access has it (the node's own functions, the
ones ``rabbitmqctl add_vhost``/``set_permissions``/``delete_vhost`` call in 3.10:
milliseconds), else ``rabbitmqctl`` (a CLI VM per command)."""

from __future__ import annotations

from typing import Any

from celery_chaos.brokers import rabbitmq_erl

ACTING_USER = "celery-chaos"
_ADD = """
ok = rabbit_vhost:add(<<"VHOST">>, <<"ACTOR">>),
ok = rabbit_auth_backend_internal:set_permissions(
    <<"USER">>, <<"VHOST">>, <<".*">>, <<".*">>, <<".*">>, <<"ACTOR">>),
io:put_chars("MARKER\\n").
"""
_DELETE = """
_ = rabbit_vhost:delete(<<"VHOST">>, <<"ACTOR">>),
io:put_chars("MARKER\\n").
"""


def _filled(expression: str, vhost: str, user: str) -> str | None:
    if not rabbitmq_erl.fits_a_binary(vhost, user):
        return None
    return expression.replace("VHOST", vhost).replace("ACTOR", ACTING_USER).replace("USER", user)


def add_vhost(access: Any, vhost: str, user: str) -> None:
    """Add ``vhost`` and give ``user`` every right on it (raises ``RuntimeError`` if both ways
    fail)."""
    expression = _filled(_ADD, vhost, user)
    if expression is not None and rabbitmq_erl.ask(access, expression) is not None:
        return
    access.ctl("add_vhost", vhost)
    access.ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_vhost(access: Any, vhost: str) -> None:
    """Delete ``vhost``: its queues, exchanges, messages and client connections go with it."""
    expression = _filled(_DELETE, vhost, "")
    if expression is not None and rabbitmq_erl.ask(access, expression) is not None:
        return
    access.ctl("delete_vhost", vhost)
