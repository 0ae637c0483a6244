"""Storm benchmarks (issue 12): the checker on a storm-shaped history, and the proxy's latency.

```
python benchmarks/storm_bench.py [--events 1000000] [--runs 3] [--pings 5000] [--smoke]
```

e. checker on a storm history: bench.py's synthetic run (5% of attempts killed and redelivered)
   with a storm's worker-level faults laid over it every ~10 s of history time (a kill_worker with
   its worker_exit and the supervisor's worker_started/worker_ready, a broker restart every ~3
   minutes, a connection reset and a 5 s partition every ~45 s), cut at ``--events``; timed:
   ``check()`` plus the storm totals and the redelivery latency distribution. Target <= 5 s
   (figure d's).
f. proxy added latency: median Redis PING round trip through a worker's proxy minus direct, on a
   real redis-server, no fault active. Target < 1 ms. With ``--docker``, the same figure on the
   docker backend beside it (informative): PINGs from inside a worker-image container, to the
   broker container directly vs through the proxy on the network's gateway (network.py).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from celery_chaos.core import history as h
from celery_chaos.core.checker import check
from celery_chaos.core.distribution import redelivery_distribution
from celery_chaos.placements.local.redis_server import RedisServer
from celery_chaos.placements.ports import free_port
from celery_chaos.placements.proxy import ProxyHub

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import synthetic_history  # noqa: E402

CHECKER_TARGET, PROXY_TARGET = 5.0, 0.001
SMOKE = {"events": 20_000, "runs": 1, "pings": 200}  # --smoke: seconds, every figure once


def storm_faults(events: list[h.Event], seed: int = 0) -> list[h.Event]:
    """A storm's worker-level faults over the synthetic run's time span."""
    rng = random.Random(seed)
    start, end = events[0]["ts"], events[-1]["ts"]
    added: list[h.Event] = []
    t, index, worker_no = start + rng.uniform(5, 15), 10**6, 2

    def add(event_type: str, ts: float, **fields: Any) -> None:
        added.append({"type": event_type, "ts": ts, **fields})

    while t < end:
        victim = f"w{worker_no - 2}@bench"
        add(h.FAULT, t, fault=index, kind="kill_worker", status="injected", worker=victim,
            hits=[], detail="SIGKILL process group", blame="worker")  # fmt: skip
        add(h.WORKER_EXIT, t + 0.01, worker=victim, pid=50_000 + worker_no, exitcode=None,
            signal=9, log_tail=[])  # fmt: skip
        fresh = f"w{worker_no}@bench"
        add(h.WORKER_STARTED, t + 1.0, worker=fresh, pid=60_000 + worker_no)
        add(h.WORKER_READY, t + 2.0, worker=fresh, pid=60_000 + worker_no, host="bench")
        if rng.random() < 0.25:
            kind = rng.choice(["drop_connections", "partition"])
            add(h.FAULT, t + 3.0, fault=index + 1, kind=kind, status="injected", worker=fresh,
                hits=[], detail=kind)  # fmt: skip
        if rng.random() < 0.06:
            add(h.FAULT, t + 4.0, fault=index + 2, kind="restart_broker", status="injected",
                hits=[], detail="broker restarted")  # fmt: skip
        t, index, worker_no = t + rng.uniform(5, 15), index + 3, worker_no + 1
    return added


def storm_history(count: int) -> tuple[list[h.Event], Any]:
    events, broker, _ = synthetic_history(count)
    events = sorted([*events, *storm_faults(events)], key=lambda e: e["ts"])[:count]
    for seq, event in enumerate(events):
        event["seq"] = seq
    return events, broker


def checker_on_storm(count: int, runs: int) -> tuple[list[float], list[float]]:
    """Samples on the storm history, and on bench.py's plain history (figure d) interleaved with
    them: on a busy machine the ratio of the two says more than either alone."""
    history, broker = storm_history(count)
    plain, plain_broker, _ = synthetic_history(count)
    samples, baseline = [], []
    for _ in range(runs):
        began = time.perf_counter()
        check(plain, plain_broker, None)
        baseline.append(time.perf_counter() - began)
        began = time.perf_counter()
        verdicts = check(history, broker, None)
        totals, latency = verdicts.totals(), redelivery_distribution(verdicts.tasks)
        samples.append(time.perf_counter() - began)
    print(f"   {len(history)} events, totals {totals}, redelivery latency {latency}")
    return samples, baseline


def proxy_added_latency(pings: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer("broker", Path(folder))
        server.start()
        hub = ProxyHub()
        try:
            proxy = hub.open("w0", ("127.0.0.1", server.port))
            direct = redis.Redis(port=server.port, password=server.password)
            proxied = redis.Redis(port=proxy.port, password=server.password)
            return median_ping(direct, pings), median_ping(proxied, pings)
        finally:
            hub.close()
            server.stop()


def median_ping(client: redis.Redis, pings: int) -> float:
    client.ping()  # connect outside the timing
    times = []
    for _ in range(pings):
        began = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


_IN_CONTAINER_PINGS = """
import statistics, sys, time, redis
def median(host, port):
    client = redis.Redis(host=host, port=int(port), password=sys.argv[1])
    client.ping()
    times = []
    for _ in range(int(sys.argv[2])):
        began = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - began)
    return statistics.median(times)
print(median(sys.argv[3], sys.argv[4]), median(sys.argv[5], sys.argv[6]))
"""


def docker_proxy_added_latency(pings: int, image: str) -> tuple[float, float]:
    """Figure f on docker: a container PINGs the broker container directly, then through its
    proxy (listening on the network's gateway, forwarding to the loopback-published port)."""
    from celery_chaos.placements.docker import containers, images, network

    client = images.docker_client(timeout=60)
    labels = {containers.RUN_LABEL: f"bench-{time.time_ns()}"}
    net = containers.RunNetwork(f"chaos-bench-{time.time_ns()}", labels)
    net.create()
    broker = containers.LoopbackRedis(images.DEFAULT_REDIS_IMAGE, "bench", free_port(), False)
    broker.with_name(f"{net.name}-broker").with_network(net).with_kwargs(labels=labels)
    proxies = network.BrokerProxies()
    try:
        broker.start()
        proxies.listen_on(network.gateway_address(client, net.name), broker.host_port)
        url = urlsplit(proxies.open(0, "redis://:bench@broker:6379/0"))
        output = client.containers.run(
            image, ["python", "-c", _IN_CONTAINER_PINGS, "bench", str(pings),
                    f"{net.name}-broker", "6379", url.hostname, str(url.port)],
            network=net.name, labels=labels, remove=True,
        )  # fmt: skip
        direct, proxied = map(float, output.split())
        return direct, proxied
    finally:
        proxies.close()
        broker.stop()
        net.remove()
        containers.cleanup(labels[containers.RUN_LABEL], client)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--docker", action="store_true", help="figure f on docker too")
    parser.add_argument("--worker-image", default="celery-chaos/worker:latest")
    parser.add_argument("--only-proxy", action="store_true", help="figure f only")
    parser.add_argument(
        "--smoke", action="store_true", help=f"tiny N ({SMOKE}), local only: proves it runs"
    )
    options = parser.parse_args()
    if options.smoke:
        vars(options).update(SMOKE, docker=False)
    if not options.only_proxy:
        checker_figure(options)
    proxy_figure(options)
    if options.smoke:
        print("smoke run (--smoke): tiny N, so the figures prove the benchmark runs, not its speed")
    return 0


def checker_figure(options: argparse.Namespace) -> None:
    samples, baseline = checker_on_storm(options.events, options.runs)
    seconds, plain = statistics.median(samples), statistics.median(baseline)
    verdict = "PASS" if seconds <= CHECKER_TARGET else "MISS"
    print(f"e. checker on a {options.events:,}-event storm history: {seconds:.3f} s"
          f"   target <= {CHECKER_TARGET:g} s  {verdict}")  # fmt: skip
    print(f"   (figure d's plain history, interleaved: {plain:.3f} s; ratio {seconds / plain:.2f})")


def proxy_figure(options: argparse.Namespace) -> None:
    direct, proxied = proxy_added_latency(options.pings)
    added = proxied - direct
    verdict = "PASS" if added < PROXY_TARGET else "MISS"
    print(
        f"f. proxy added latency (median PING): {added * 1000:.3f} ms (direct"
        f" {direct * 1000:.3f} ms, proxied {proxied * 1000:.3f} ms)   target < 1 ms  {verdict}"
    )
    if options.docker:
        direct, proxied = docker_proxy_added_latency(options.pings, options.worker_image)
        print(
            f"   docker: {(proxied - direct) * 1000:.3f} ms (direct {direct * 1000:.3f} ms,"
            f" proxied {proxied * 1000:.3f} ms; informative)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
