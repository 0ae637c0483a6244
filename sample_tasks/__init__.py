"""The instrumented sample app of the default suite (shipped as ``celery_chaos.sample_tasks``)."""
