"""The local backend: redis-server and ``celery worker`` processes on this machine."""
