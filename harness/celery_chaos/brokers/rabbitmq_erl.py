"""Questions asked of a RabbitMQ node through ``erl_call`` instead of ``rabbitmqctl``, where the
node's access offers it (a local node: :meth:`RabbitMQServer.erl`).

Why: every ``rabbitmqctl`` call boots an Erlang VM with the CLI's Elixir code. Measured on
RabbitMQ 3.10.8 / OTP 25 (2 CPUs): ``list_queues`` takes 0.35 s and 0.46 s of CPU, the same
question through ``erl_call`` (Erlang's own C client, in every Erlang installation) 2-6 ms;
a run asks it every second while it waits for quiet, and the final inspection several times.
The answers are the node's own functions (``rabbit_amqqueue:info_all/2``, the ones
``list_queues`` calls) in the rows ``rabbitmqctl --formatter json`` prints, so callers read one
format. Anything that fails here (no ``erl_call``, a release whose functions differ, an
argument value JSON cannot carry) returns None and the caller asks ``rabbitmqctl``.
"""

from __future__ import annotations

import json
from typing import Any

# The marker before the answer on stdout (erl_call also prints the expression's value).
ANSWER = "chaos-answer:"

# list_queues' rows: name as a string, arguments as [key, type, value], atoms as strings.
_LIST_QUEUES = """
Conv = fun({name, {resource, _, queue, N}}) -> {name, N};
          ({arguments, A}) -> {arguments, [[K, atom_to_binary(T, utf8), V] || {K, T, V} <- A]};
          ({K, V}) when is_atom(V) -> {K, atom_to_binary(V, utf8)};
          (KV) -> KV
       end,
Rows = [maps:from_list([Conv(KV) || KV <- Row])
        || Row <- rabbit_amqqueue:info_all(<<"VHOST">>, [COLUMNS])],
io:put_chars([<<"MARKER">>, rabbit_json:encode(Rows), <<"\\n">>]).
"""


def answer(stdout: str) -> str | None:
    """The text after :data:`ANSWER` on stdout, or None."""
    for line in stdout.splitlines():
        if line.startswith(ANSWER):
            return line[len(ANSWER) :]
    return None


def evaluate(server: Any, expression: str) -> str | None:
    """``expression`` evaluated in the node through the access's ``erl`` (its stdout), or None:
    the access has no ``erl`` or the call failed."""
    erl = getattr(server, "erl", None)
    if erl is None:
        return None
    try:
        return erl(expression)
    except RuntimeError:
        return None


def ask(server: Any, expression: str) -> str | None:
    """What ``expression`` (``MARKER`` standing for :data:`ANSWER`) printed after the marker,
    or None: not asked this way, or the call or the expression failed."""
    return answer(evaluate(server, expression.replace("MARKER", ANSWER)) or "")


def fits_a_binary(*texts: str) -> bool:
    """Whether ``texts`` can go between ``<<"`` and ``">>`` as they are: a quote would end the
    literal and a backslash starts an escape (``a\\b`` would name another vhost)."""
    return not any(char in text for text in texts for char in '"\\')


def queue_rows(server: Any, vhost: str, columns: tuple[str, ...]) -> list[dict] | None:
    """``rabbitmqctl list_queues -p VHOST COLUMNS --formatter json`` rows, or None."""
    if not all(column.isidentifier() for column in columns) or not fits_a_binary(vhost):
        return None
    found = ask(server, _LIST_QUEUES.replace("VHOST", vhost).replace("COLUMNS", ", ".join(columns)))
    if found is None:
        return None
    try:
        rows = json.loads(found)
    except ValueError:
        return None
    return rows if isinstance(rows, list) else None


def sync_metadata_log(server: Any) -> bool:
    """``disk_log:sync(latest_log)`` in the node: whether it was done this way."""
    return ask(server, '_ = disk_log:sync(latest_log), io:put_chars("MARKER\\n").') is not None


# close_all_connections as rabbitmqctl 3.10 runs it: the vhost's tracked connections, then the
# tracking handler closes each with the explanation (no delay between them).
_CLOSE_ALL = """
Conns = rabbit_connection_tracking:list(<<"VHOST">>),
rabbit_connection_tracking_handler:close_connections(Conns, <<"REASON">>, 0),
io:put_chars([<<"MARKER">>, integer_to_binary(length(Conns)), <<"\\n">>]).
"""


def close_all_connections(server: Any, vhost: str, reason: str) -> bool:
    """``rabbitmqctl close_all_connections -p VHOST REASON``: whether it was done this way."""
    if not fits_a_binary(vhost, reason):
        return False
    return ask(server, _CLOSE_ALL.replace("VHOST", vhost).replace("REASON", reason)) is not None
