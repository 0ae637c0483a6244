"""The settings a pytest-django run uses when its workers must see the test database
(docs/how-to/pytest.md, "Django: sharing data with workers"). The workers are other processes:
they import this module afresh and open ``DATABASES["default"]["NAME"]``, never the name
pytest-django gives the test database. So NAME *is* the test database's name (``test_`` before
the usual one, as Django names it, so the developer's own database is never the one pytest-django
drops and recreates): pytest-django creates it, migrates it, and the workers open the same one.
Under pytest-xdist pytest-django appends ``_<worker id>`` to TEST NAME; the workers inherit
``PYTEST_XDIST_WORKER``, so NAME appends the same. For SQLite this also makes the test database a
file: without TEST NAME pytest-django's SQLite test database lives in the test process's
memory, where no worker can reach it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.django_app.settings import *  # noqa: F403
from tests.integration.django_app.settings import DATABASES

_default = DATABASES["default"]
if _default["ENGINE"].endswith("sqlite3"):
    _test_name = str(Path(_default["NAME"]).with_name(f"test_{Path(_default['NAME']).name}"))
else:
    _test_name = f"test_{_default['NAME']}"
_worker = os.environ.get("PYTEST_XDIST_WORKER")
_default["TEST"] = {"NAME": _test_name}
_default["NAME"] = f"{_test_name}_{_worker}" if _worker else _test_name
