"""The local placement: redis-server and ``celery worker`` processes on this machine."""
