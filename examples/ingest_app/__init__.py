"""A worked example for ``celery-chaos repro`` and ``celery-chaos audit`` (see README.md here)."""
