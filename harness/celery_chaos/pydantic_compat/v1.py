"""pydantic 1.10's translation of the pydantic 2 surface the harness uses (work in progress)."""

from __future__ import annotations

raise ImportError("celery-chaos needs pydantic>=2.5 (pydantic 1 support is not finished)")
