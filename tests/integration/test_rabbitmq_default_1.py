"""The default suite on a real ``rabbitmq-server``, quarter 1 of 4 (rabbitmq_suite_support.py)."""

from tests.integration.rabbitmq_suite_support import quarter_of_the_suite, skip_without_rabbitmq

skip_without_rabbitmq()
test_default_suite_on_rabbitmq = quarter_of_the_suite(0)
