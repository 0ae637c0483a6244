"""The app's own services a scenario asks for (``services.postgres``, ``services.redis``): what
they are called in the workers' environment, how their URLs look, and how the harness reads
their state. Placement-free: each placement starts the servers (placements/*/) and hands the
URLs here; these helpers only need a URL (and, for SQL, Debian's ``psql``)."""

from __future__ import annotations

# What the workers and ``run:`` setup steps find in their environment (the names: the
# ones a Django or SQLAlchemy app already reads).
DATABASE_URL_ENV = "DATABASE_URL"
REDIS_URL_ENV = "REDIS_URL"
# The service names a scenario's ``services`` can hold, in the order they are started.
SERVICE_NAMES = ("postgres", "redis")
