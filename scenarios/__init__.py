"""The default suite, shipped as data: `celery-chaos run` with no path runs it."""
