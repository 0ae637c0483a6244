"""``celery_chaos.pydantic_compat`` is the one place that knows pydantic's major (issue 18).

Under pydantic 2 it must hand out pydantic's own objects (no behaviour change on the main path);
under pydantic 1.10 its translation (tests/integration/test_pydantic_1.py runs these unit tests
and the schema's in a pydantic 1 venv).
"""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest
from celery_chaos import pydantic_compat

PACKAGE = Path(__file__).resolve().parents[2] / "harness" / "celery_chaos"
V2 = pytest.mark.skipif(pydantic.VERSION.startswith("1."), reason="pydantic 2's own objects")
V1 = pytest.mark.skipif(not pydantic.VERSION.startswith("1."), reason="pydantic 1's translation")


@V2
def test_under_pydantic_2_the_names_are_pydantics_own() -> None:
    assert pydantic_compat.PYDANTIC_MAJOR == 2
    for name in pydantic_compat.__all__:
        if name != "PYDANTIC_MAJOR":
            assert getattr(pydantic_compat, name) is getattr(pydantic, name), name


@V1
def test_under_pydantic_1_the_names_are_the_translation() -> None:
    from celery_chaos.pydantic_compat import v1

    assert pydantic_compat.PYDANTIC_MAJOR == 1
    assert pydantic_compat.BaseModel is v1.BaseModel
    assert issubclass(pydantic_compat.ValidationError, pydantic.ValidationError)


def test_no_other_module_imports_pydantic() -> None:
    """Every model and error of the harness goes through the compat module, so one import
    decides the major for all of them."""
    importing = re.compile(r"^\s*(from pydantic[ .]|import pydantic\b)", re.MULTILINE)
    found = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "pydantic_compat" not in path.parts and importing.search(path.read_text())
    ]
    assert found == []


def test_a_scenario_error_reads_the_same_under_either_major() -> None:
    """The wording pydantic_compat.v1 copies: these lines are pydantic 2's, checked under both."""
    from celery_chaos.core.scenario import parse_scenario
    from celery_chaos.core.scenario_base import ScenarioError

    base = {"name": "n", "description": "d", "workload": [{"task": "t"}]}
    cases = {
        "timeout": (0, "f.yaml: timeout: Input should be greater than 0"),
        "name": (5, "f.yaml: name: Input should be a valid string"),
        "nope": (1, "f.yaml: nope: Extra inputs are not permitted"),
        "celery": ([], "f.yaml: celery: Input should be a valid dictionary"),
        "seed": (2.5, "f.yaml: seed: Input should be a valid integer, got a number with a"),
        "broker": ({"kind": "kafka"}, "f.yaml: broker.kind: Input should be 'redis' or 'rabbi"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ScenarioError) as raised:
            parse_scenario({**base, key: value}, "f.yaml")
        assert str(raised.value).startswith(message), key
    with pytest.raises(ScenarioError, match=r"^f.yaml: description: Field required$"):
        parse_scenario({"name": "n", "workload": [{"task": "t"}]}, "f.yaml")
