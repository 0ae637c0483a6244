"""Which image a docker run's broker and ledger use, the names the online and offline builds
give them, and the config every harness RabbitMQ gets (pure: no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery_chaos.brokers.rabbitmq import advanced_config, rabbitmq_conf
from celery_chaos.core.scenario import parse_scenario
from celery_chaos.placements.docker import images
from celery_chaos.placements.docker.placement import DockerPlacement

BASE: dict[str, Any] = {
    "name": "s",
    "description": "broker image choice",
    "workload": [{"task": "sample_tasks.tasks.work"}],
    "expect": {"lost": 0},
}


class RecordingClient:
    """Records the pulls and re-tags a build asks the engine for."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.fail = fail
        self.images = self  # the engine's images API: pull()

    def pull(self, repository: str, tag: str) -> RecordingClient:
        self.calls.append(("pull", repository, tag))
        if self.fail:
            raise RuntimeError("no registry")
        return self  # the pulled image: tag()

    def tag(self, repository: str, tag: str) -> None:
        self.calls.append(("tag", repository, tag))


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("rabbitmq:3.13", ("rabbitmq", "3.13")),
        ("celery-chaos/rabbitmq:3", ("celery-chaos/rabbitmq", "3")),
        ("registry.local:5000/rabbitmq", ("registry.local:5000/rabbitmq", "latest")),
        ("registry.local:5000/rabbitmq:3", ("registry.local:5000/rabbitmq", "3")),
        ("rabbitmq", ("rabbitmq", "latest")),
    ],
)
def test_split_tag(image: str, parts: tuple[str, str]) -> None:
    assert images.split_tag(image) == parts


def test_online_path_pulls_the_registry_image_and_gives_it_the_one_tag() -> None:
    client = RecordingClient()
    tag = images.pull_online(
        client, images.ONLINE_RABBITMQ_IMAGE, images.DEFAULT_RABBITMQ_IMAGE, print
    )
    assert tag == "celery-chaos/rabbitmq:3"
    assert client.calls == [
        ("pull", "rabbitmq", "3.13"),
        ("tag", "celery-chaos/rabbitmq", "3"),
    ]


def test_online_path_without_a_registry_says_to_build_offline() -> None:
    with pytest.raises(images.ImageBuildError, match="pull rabbitmq:3.13 failed.*--offline"):
        images.pull_online(
            RecordingClient(fail=True), "rabbitmq:3.13", "celery-chaos/rabbitmq:3", print
        )


def test_offline_dockerfiles_exist_for_every_broker() -> None:
    compose = Path(__file__).resolve().parents[2] / "compose"
    assert (compose / "Dockerfile.rabbitmq").is_file()
    assert (compose / "rabbitmq-entrypoint.sh").stat().st_mode & 0o111


@pytest.mark.parametrize(
    ("broker", "redis_image", "broker_image"),
    [
        ({}, "celery-chaos/redis:7", "celery-chaos/redis:7"),
        ({"image": "redis:7.4"}, "redis:7.4", "redis:7.4"),
        ({"kind": "rabbitmq"}, "celery-chaos/redis:7", "celery-chaos/rabbitmq:3"),
        # broker.image is the broker's: the ledger stays on the default Redis image
        ({"kind": "rabbitmq", "image": "rabbitmq:4.0"}, "celery-chaos/redis:7", "rabbitmq:4.0"),
    ],
)
def test_broker_image_follows_the_broker_kind(
    tmp_path: Path, broker: dict, redis_image: str, broker_image: str
) -> None:
    scenario = parse_scenario(BASE | {"broker": broker}, "inline")
    backend = DockerPlacement(scenario, tmp_path)
    assert (backend.redis_image, backend.broker_image) == (redis_image, broker_image)


def test_rabbitmq_config_has_a_random_admin_and_the_consumer_timeout() -> None:
    conf = rabbitmq_conf("chaos-ab12", "s3cret", consumer_timeout=3)
    assert "default_user = chaos-ab12\n" in conf and "default_pass = s3cret\n" in conf
    assert "default_user_tags.administrator = true" in conf
    assert "guest" not in conf
    assert "consumer_timeout = 3000\n" in conf
    assert "consumer_timeout" not in rabbitmq_conf("u", "p", consumer_timeout=None)
    assert advanced_config(3) == "[{rabbit, [{channel_tick_interval, 500}]}].\n"
    assert advanced_config(None) == "[{rabbit, [{channel_tick_interval, 60000}]}].\n"
