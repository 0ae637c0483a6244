"""Settings that survive worker death, paired with a task that is safe to run again.

- task_acks_late + task_reject_on_worker_lost: a message is acknowledged only after the task ran,
  and requeued (not failed) when the process running it dies;
- worker_prefetch_multiplier = 1: a dead worker strands no prefetched messages;
- task_time_limit < visibility_timeout: Redis never hands a still-running task to a second
  worker, and a killed worker's tasks come back after 10 minutes, not the default hour;
- soft shutdown (Celery 5.5+): a cold shutdown gives running tasks 30 s, then requeues them;
- ingest_reclaim_own_lock: a redelivered ingest (same task id) takes its own lock back.
"""

import os

broker_url = os.environ.get("BROKER_URL", "redis://localhost:6379/0")
broker_connection_retry_on_startup = True

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_time_limit = 300
broker_transport_options = {"visibility_timeout": 600}
worker_soft_shutdown_timeout = 30.0
worker_enable_soft_shutdown_on_idle = True

ingest_reclaim_own_lock = True
