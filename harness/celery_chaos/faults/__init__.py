"""Fault kinds, one module each (:mod:`celery_chaos.faults.base` says what a kind is,
:mod:`celery_chaos.faults.registry` collects them). The bottom layer: pure, below the core."""
