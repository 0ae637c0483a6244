"""Build the images the docker placement runs: a worker image, a Redis image, a RabbitMQ image and a
PostgreSQL image (``services.postgres``).

Two paths, one worker Dockerfile (``compose/Dockerfile.worker``, build arg ``BASE_IMAGE``):

* online: the worker is built on ``python:3.11-slim``; Redis, RabbitMQ and PostgreSQL are the
  registry's ``redis:7``, ``rabbitmq:3.13`` and ``postgres:15``, re-tagged.
* offline (no container registry, the usual case on CI here): a Debian bookworm root is made
  with debootstrap from the host's Debian mirror and imported as ``celery-chaos/base:bookworm``;
  the Redis image is that base running Debian's redis-server, the RabbitMQ image adds Debian's
  rabbitmq-server (3.10) and the PostgreSQL image Debian's postgresql-15 from the same mirror,
  and the worker is built on the base.

Either way the worker installs the project from a wheelhouse built on the host with ``pip wheel``
(pip in the image never needs an index) into ``/opt/venv``, and runs as the non-root user
``chaos``. Image names after either path are the same defaults below, so the docker placement and
``compose/docker-compose.yml`` need not know which path built them.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from celery_chaos.placements.docker.rootfs import BASE_IMAGE, ensure_base_image
from celery_chaos.placements.docker.steps import ImageBuildError, Log, run_step, timed

__all__ = ["BASE_IMAGE", "ImageBuildError", "build_images", "docker_client", "engine_available"]

DEFAULT_WORKER_IMAGE = "celery-chaos/worker:latest"
# One Redis tag for both paths: offline it is Debian bookworm's redis-server 7.0, online it is the
# registry's redis:7 re-tagged, so callers never need to know which path ran.
DEFAULT_REDIS_IMAGE = "celery-chaos/redis:7"
ONLINE_BASE_IMAGE = "python:3.11-slim"
ONLINE_REDIS_IMAGE = "redis:7"
# Likewise one RabbitMQ tag: offline Debian bookworm's rabbitmq-server 3.10, online the registry's
# rabbitmq:3.13 (its layout, /etc/rabbitmq/conf.d and rabbitmqctl on the PATH, is what the
# backend relies on; compose/Dockerfile.rabbitmq reproduces it).
DEFAULT_RABBITMQ_IMAGE = "celery-chaos/rabbitmq:3"
ONLINE_RABBITMQ_IMAGE = "rabbitmq:3.13"
DEFAULT_BROKER_IMAGES = {"redis": DEFAULT_REDIS_IMAGE, "rabbitmq": DEFAULT_RABBITMQ_IMAGE}
# services.postgres: offline Debian bookworm's postgresql-15 (compose/Dockerfile.postgres, the
# registry image's environment interface), online the registry's postgres:15 re-tagged.
DEFAULT_POSTGRES_IMAGE = "celery-chaos/postgres:15"
ONLINE_POSTGRES_IMAGE = "postgres:15"
ONLINE_BROKER_IMAGES = {  # what the online path pulls for each role
    "redis": ONLINE_REDIS_IMAGE,
    "rabbitmq": ONLINE_RABBITMQ_IMAGE,
    "postgres": ONLINE_POSTGRES_IMAGE,
}
# Both bases run CPython 3.11 (Debian bookworm's python3, python:3.11-slim): host-built wheels
# only fit when the host builds them with 3.11 too.
IMAGE_PYTHON = (3, 11)

WORKER_DOCKERFILE = Path("compose") / "Dockerfile.worker"
PROJECT_DIST = "celery_chaos"
# The worker image carries the green pools too, so gevent/eventlet scenarios run on docker, and
# psycopg, so an app's tasks reach services.postgres (DATABASE_URL).
IMAGE_EXTRAS = "[gevent,eventlet,postgres]"
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--quiet")
MAX_FILL_ROUNDS = 3
_NO_MATCH = re.compile(r"No matching distribution found for ([^\n]+)")


# --- engine ------------------------------------------------------------------------------


def docker_client(timeout: int = 10) -> Any:
    """A docker SDK client talking to the engine named by DOCKER_HOST (or the default socket)."""
    import docker

    return docker.from_env(version="auto", timeout=timeout)


def engine_available() -> tuple[bool, str]:
    """Whether a Docker engine answers, with a one-line reason, so callers can fail fast."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return False, "the docker SDK is not installed (pip install 'celery-chaos[docker]')"
    try:
        client = docker_client(timeout=5)
        client.ping()
        version = client.version().get("Version", "?")
    except Exception as error:  # any failure means "no usable engine"; say why in one line
        detail = " ".join(str(error).split())[:200]
        return False, f"no Docker engine reachable ({type(error).__name__}: {detail})"
    return True, f"Docker engine {version} reachable"


def have_image(client: Any, image: str) -> bool:
    """Whether the engine has ``image``, pulling it if a registry has it."""
    import docker.errors

    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(image)
            return True
        except docker.errors.APIError:
            return False


# --- public entry point -------------------------------------------------------------------


def build_images(
    offline: bool,
    worker_image: str = DEFAULT_WORKER_IMAGE,
    redis_image: str = DEFAULT_REDIS_IMAGE,
    project_root: Path | None = None,
    log: Log = print,
    rabbitmq_image: str = DEFAULT_RABBITMQ_IMAGE,
) -> dict[str, str]:
    """Build (or fetch) the worker, Redis and RabbitMQ images; returns ``{role: tag}`` of what
    now exists. Cached runs are fast: docker build reuses every unchanged layer.

    Raises :class:`ImageBuildError` with a one-line cause when a step fails.
    """
    root = (project_root or default_project_root()).resolve()
    client = docker_client(timeout=600)
    log = _one_line_at_a_time(log)
    tags = {"redis": redis_image, "rabbitmq": rabbitmq_image, "postgres": DEFAULT_POSTGRES_IMAGE}
    jobs: dict[str, Callable[[], str]]
    if offline:
        base = ensure_base_image(client, log)
        jobs = {
            role: partial(build_offline, client, f"Dockerfile.{role}", tag, root, log)
            for role, tag in tags.items()
        }
        worker_base = BASE_IMAGE
    else:
        base = None
        jobs = {
            role: partial(pull_online, client, ONLINE_BROKER_IMAGES[role], tag, log)
            for role, tag in tags.items()
        }
        worker_base = ONLINE_BASE_IMAGE
    jobs["worker"] = partial(build_worker, client, worker_image, worker_base, root, log)
    return ({"base": base} if base else {}) | _side_by_side(jobs)


def _one_line_at_a_time(log: Log) -> Log:
    """``log`` for jobs on several threads: one whole line at a time."""
    lock = threading.Lock()

    def locked(line: str) -> None:
        with lock:
            log(line)

    return locked


def _side_by_side(jobs: dict[str, Callable[[], str]]) -> dict[str, str]:
    """Run the image jobs at once (the engine builds them in parallel; each mostly waits on the
    mirror or on apt inside its container): ``{role: tag}`` in ``jobs`` order. The first
    failure is raised once every job has ended, so no build is left running behind it."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {role: pool.submit(job) for role, job in jobs.items()}
    return {role: future.result() for role, future in futures.items()}


def default_project_root() -> Path:
    """The checkout to build from: this module's own (editable install), else the cwd.

    A regular install has no compose/ or pyproject.toml next to the package, so a user who
    installed from a wheel runs the build from inside a checkout.
    """
    for candidate in (Path(__file__).resolve().parents[4], Path.cwd()):
        if (candidate / "pyproject.toml").is_file() and (candidate / WORKER_DOCKERFILE).is_file():
            return candidate
    raise ImageBuildError(
        f"no celery-chaos checkout found (need pyproject.toml and {WORKER_DOCKERFILE}):"
        " run from the project's root or pass project_root"
    )


# --- brokers ------------------------------------------------------------------------------


def build_offline(client: Any, dockerfile: str, tag: str, root: Path, log: Log) -> str:
    """A broker image on the imported base (``compose/<dockerfile>``). Built on the host's
    network: an ``apt-get`` in it (RabbitMQ) reaches the Debian mirror debootstrap used, as the
    host does (a proxy on the host's loopback included)."""
    context = root / "compose"
    with timed(log, f"build {tag} from {BASE_IMAGE}"):
        buildargs = {"BASE_IMAGE": BASE_IMAGE}
        _docker_build(client, context, context / dockerfile, tag, buildargs, network_mode="host")
    return tag


def pull_online(client: Any, source: str, tag: str, log: Log) -> str:
    """Pull a registry image (``redis:7``) and give it the tag callers expect."""
    repository, version = split_tag(source)
    with timed(log, f"pull {source}"):
        try:
            image = client.images.pull(repository, tag=version)
        except Exception as error:
            raise ImageBuildError(
                f"pull {source} failed ({error}); no registry? use --offline"
            ) from None
    if tag != source:
        image.tag(*split_tag(tag))
    return tag


def split_tag(image: str) -> tuple[str, str]:
    """``repository``, ``tag`` of an image name (a registry's ``host:port/`` is no tag)."""
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, "latest"
    return repository, tag


# --- worker ---------------------------------------------------------------------------------


def build_worker(client: Any, tag: str, base: str, root: Path, log: Log) -> str:
    """Build the worker image on ``base`` from a wheelhouse of the project and its deps."""
    wheelhouse = root / ".wheelhouse"
    with timed(log, f"pip wheel {root} into {wheelhouse}"):
        make_wheelhouse(root, wheelhouse)
    with timed(log, f"check the wheelhouse against {base}'s Python"):
        complete_wheelhouse(client, base, wheelhouse, log)
    with timed(log, f"build {tag} on {base}"):
        _docker_build(client, wheelhouse, root / WORKER_DOCKERFILE, tag, {"BASE_IMAGE": base})
    return tag


def make_wheelhouse(root: Path, wheelhouse: Path) -> None:
    """Fresh wheels of the project, every dependency and the green-pool extras, split into
    ``deps/`` and ``project/``.

    The split keeps the image's dependency layer cached when only the project changed.
    """
    if not (root / "pyproject.toml").exists():
        raise ImageBuildError(f"{root}: no pyproject.toml (pass project_root)")
    if sys.version_info[:2] != IMAGE_PYTHON:
        raise ImageBuildError(
            f"the wheelhouse is built with this Python ({sys.version.split()[0]}) but the images"
            f" run Python {'.'.join(map(str, IMAGE_PYTHON))}: run the build with python3.11"
        )
    shutil.rmtree(wheelhouse, ignore_errors=True)
    deps, project = wheelhouse / "deps", wheelhouse / "project"
    deps.mkdir(parents=True)
    project.mkdir()
    run_step([*PIP_WHEEL, "--wheel-dir", str(deps), f"{root}{IMAGE_EXTRAS}"], "pip wheel")
    built = list(deps.glob(f"{PROJECT_DIST}-*.whl"))
    if not built:
        raise ImageBuildError(f"pip wheel produced no {PROJECT_DIST} wheel in {deps}")
    for wheel in built:
        wheel.replace(project / wheel.name)


def complete_wheelhouse(client: Any, base: str, wheelhouse: Path, log: Log) -> None:
    """Add the wheels that the image's Python needs but the host's resolution left out.

    Markers are evaluated for the host interpreter: redis-py needs async-timeout only on
    Python < 3.11.3, so the host's 3.11.7 skips it while bookworm's 3.11.2 requires it. A
    dry-run install inside the base image (no network) names what is missing.
    """
    deps = wheelhouse / "deps"
    for _ in range(MAX_FILL_ROUNDS):
        missing = missing_in_image(client, base, wheelhouse)
        if not missing:
            return
        log(f"adding wheels the image needs: {', '.join(missing)}")
        run_step([*PIP_WHEEL, "--wheel-dir", str(deps), *missing], "pip wheel")
    raise ImageBuildError(f"wheelhouse still incomplete for {base} after {MAX_FILL_ROUNDS} rounds")


def missing_in_image(client: Any, base: str, wheelhouse: Path) -> list[str]:
    """Requirements a no-index dry-run install of the project in ``base`` cannot satisfy."""
    import docker.errors

    # The base's own pip, not a fresh venv (creating one costs seconds); --ignore-installed so
    # packages Debian put in the system site-packages do not count as available.
    script = (
        "python3 -m pip install --dry-run --quiet --ignore-installed --no-index"
        f' --find-links /wheels/deps "$(echo /wheels/project/*.whl){IMAGE_EXTRAS}"'
    )
    try:
        client.containers.run(
            base,
            ["sh", "-c", script],
            network_mode="none",
            environment={"PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            user="0",
            volumes={str(wheelhouse): {"bind": "/wheels", "mode": "ro"}},
            remove=True,
            stdout=False,
            stderr=True,
        )
    except docker.errors.ContainerError as error:
        output = error.stderr.decode(errors="replace") if error.stderr else str(error)
        missing = [match.split(";")[0].strip() for match in _NO_MATCH.findall(output)]
        if not missing:
            tail = " | ".join(output.strip().splitlines()[-5:])
            raise ImageBuildError(f"dry-run install in {base} failed: {tail}") from None
        return missing
    return []


def _docker_build(
    client: Any,
    context: Path,
    dockerfile: Path,
    tag: str,
    buildargs: dict[str, str],
    network_mode: str | None = None,
) -> None:
    """``docker build`` through the SDK, raising with the build log's tail on failure."""
    import docker.errors

    try:
        client.images.build(
            path=str(context),
            dockerfile=str(dockerfile),
            tag=tag,
            buildargs=buildargs,
            network_mode=network_mode,
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as error:
        lines = (str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log)
        tail = " | ".join(line.strip() for line in lines if line.strip())[-800:]
        raise ImageBuildError(f"docker build of {tag} failed: {error.msg}: {tail}") from None
    except docker.errors.APIError as error:
        raise ImageBuildError(f"docker build of {tag} failed: {error.explanation}") from None
