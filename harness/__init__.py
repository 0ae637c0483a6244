"""celery-chaos: prove whether a Celery deployment survives worker death.

Architecture (Jepsen's): a *backend* provisions broker, ledger and workers; a *workload* says
what is dispatched; the *nemesis* injects faults at triggers; the *history* is the ordered record
of events; the *checker* turns the history into verdicts; *reports* render them.
"""

__version__ = "0.1.0"
