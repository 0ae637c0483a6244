"""The documentation: the site builds with ``mkdocs build --strict`` (broken links, missing pages
and a failing generator are errors), its generated reference says what the code says, README
stays an entry page that states the three rules, and the version is the same everywhere."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from celery_chaos import __version__
from celery_chaos.cli_schema import scenario_json_schema
from celery_chaos.core import checker
from celery_chaos.core.expectations import ANOMALIES
from celery_chaos.faults.registry import FAULTS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
HAS_MKDOCS = importlib.util.find_spec("mkdocs") is not None and (
    importlib.util.find_spec("material") is not None
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for this module with ``--strict``."""
    if not HAS_MKDOCS:
        pytest.skip("mkdocs-material is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _text(html_file: Path) -> str:
    """A page's text without tags or entities that split words."""
    text = re.sub(r"<[^>]+>", "", html_file.read_text(encoding="utf-8"))
    return text.replace("&#39;", "'").replace("&quot;", '"').replace("&amp;", "&")


def test_site_builds_strict_and_lists_every_fault_kind(site: Path) -> None:
    page = _text(site / "reference" / "faults" / "index.html")
    generated = page.split("what it does", 1)[1].split("How each backend", 1)[0]
    for kind in FAULTS.values():
        assert kind.name in generated and kind.summary.replace("`", "") in generated


def test_site_includes_the_checker_docstring_rather_than_a_copy(site: Path) -> None:
    page = _text(site / "explanation" / "checker" / "index.html")
    first = inspect.getdoc(checker).splitlines()[0].replace("``", "")
    assert first in page
    assert "<!--" not in (site / "explanation" / "checker" / "index.html").read_text()
    strict = _text(site / "reference" / "outcomes" / "index.html")
    assert all(name in strict for name in ANOMALIES)


def test_site_serves_the_schema_and_its_generated_page(site: Path) -> None:
    served = json.loads((site / "scenario.schema.json").read_text(encoding="utf-8"))
    assert served == scenario_json_schema()
    page = _text(site / "reference" / "scenario-schema" / "index.html")
    for key in scenario_json_schema()["properties"]:
        assert key in page


def test_site_includes_the_readme_concept_table(site: Path) -> None:
    page = _text(site / "explanation" / "architecture" / "index.html")
    assert "core/checker.py" in page and "run/loop.py" in page


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.M))
    pages = {
        p.relative_to(ROOT / "docs").as_posix()
        for p in (ROOT / "docs").rglob("*.md")
        if "hooks" not in p.parts
    }
    assert pages == nav


def test_default_suite_table_is_one_table_with_every_shipped_scenario() -> None:
    text = (ROOT / "docs" / "reference" / "default-suite.md").read_text(encoding="utf-8")
    start = text.index("| file |")
    block = text[start:].split("\n\n", 1)[0].splitlines()  # a blank line would end the table
    listed = {m.group(1) for line in block if (m := re.match(r"\| `([\w.-]+)`", line))}
    shipped = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert listed == shipped


def test_readme_is_an_entry_page_with_the_quickstart_and_three_rules() -> None:
    assert len(README.splitlines()) <= 200
    quickstart = README.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in quickstart.splitlines()[1:] if line]
    assert commands == ["pip install -e '.[dev]'", "celery-chaos run", "pytest"]
    # issue 17: README states the strict rule, the skip rule and the explanation lines
    assert "**Strict.**" in README and "strict: false" in README and "never passes" in README
    assert "**Skipped.**" in README and "--require-all" in README
    assert "**Explanation lines.**" in README and "`explanations`" in README
    assert "\n## Concepts\n" in README  # the concept table stays where contributors look first


def test_readme_links_reach_existing_files() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_version_is_one_everywhere_and_docs_stay_out_of_the_runtime() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"$', pyproject, re.M)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.M)
    assert version is not None and version.group(1) == __version__ == released[0]
    assert "## [Unreleased]" in changelog
    runtime = pyproject.split("\ndependencies = [", 1)[1].split("]", 1)[0]
    extras = dict(re.findall(r"^(docs|dev) = \[(.*)\]$", pyproject, re.M))
    assert '"mkdocs-material' in extras["docs"] and '"mkdocs-material' in extras["dev"]
    assert "mkdocs" not in runtime


def test_mkdocs_config_names_the_hook_that_generates_the_reference() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["strict"] is True
    for hook in config["hooks"]:
        assert (ROOT / hook).is_file()
