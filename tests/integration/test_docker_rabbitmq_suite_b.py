"""The default suite and the RabbitMQ scenarios on the docker backend with a RabbitMQ broker
container, second half (the first is test_docker_rabbitmq_suite_a.py): each scenario meets its
written expectations, as it does on a local ``rabbitmq-server`` node."""

import pytest

from tests.integration.docker_rabbitmq_support import half_of_the_suite

pytestmark = [pytest.mark.docker, pytest.mark.integration]
test_scenario_on_docker_rabbitmq = half_of_the_suite(1)
