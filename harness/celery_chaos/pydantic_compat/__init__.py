"""The one place that knows pydantic's major version (issue 18: install beside a pydantic 1 app).

The scenario schema is written in pydantic 2's style. Under pydantic 2 this module re-exports
pydantic's own objects unchanged (no behaviour change); under pydantic 1.10 it exports
`celery_chaos.pydantic_compat.v1`'s translation of the same surface (same accepted input, same
error wording, a JSON Schema with the same keys and bounds). Every module of the harness
imports these names from here, never from pydantic. It sits below every layer (it imports nothing
from the package), so the fault kinds, the bottom layer, may use it too.
"""

from __future__ import annotations

import pydantic

PYDANTIC_MAJOR = int(pydantic.VERSION.split(".")[0])

if PYDANTIC_MAJOR >= 2:
    from pydantic import (
        AfterValidator,
        BaseModel,
        ConfigDict,
        Field,
        ValidationError,
        ValidationInfo,
        field_validator,
        model_validator,
    )
else:  # pragma: no cover - exercised by tests/integration/test_pydantic_1.py in a pydantic 1 venv
    from celery_chaos.pydantic_compat.v1 import (  # type: ignore[assignment]
        AfterValidator,
        BaseModel,
        ConfigDict,
        Field,
        ValidationError,
        ValidationInfo,
        field_validator,
        model_validator,
    )

__all__ = [
    "PYDANTIC_MAJOR",
    "AfterValidator",
    "BaseModel",
    "ConfigDict",
    "Field",
    "ValidationError",
    "ValidationInfo",
    "field_validator",
    "model_validator",
]
