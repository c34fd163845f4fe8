"""Arrows point down: the command line (`ltc/`) is the top floor and nothing inside the project imports it; flows
use tasks, tasks use storage, the rules and `common/`; the rules use neither Prefect nor the database. Every
import is counted, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"ltc", "common", "flows", "tasks", "rules", "storage", "deployments"}
# What each floor may import of the project, and what it may not import from outside.
MAY_USE = {
    "common": {"common", "rules"},
    "rules": {"rules"},
    "storage": {"storage", "common", "rules"},
    "tasks": {"tasks", "storage", "common", "rules"},
    "flows": {"flows", "tasks", "storage", "common", "rules"},
    "deployments": {"deployments", "flows", "tasks", "storage", "common", "rules"},
}
NOT_FROM_OUTSIDE = {"rules": {"prefect", "sqlalchemy", "psycopg"}, "common": {"sqlalchemy", "psycopg"}}


def imports(path: Path) -> set[str]:
    """The top-level names of every module a file imports (absolute imports; the project uses no relative ones)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import"
            found.add((node.module or "").split(".")[0])
    return found


def files(floor: str) -> list[Path]:
    return sorted((ROOT / floor).rglob("*.py"))


@pytest.mark.parametrize("floor", sorted(MAY_USE))
def test_each_floor_imports_only_the_floors_below_it(floor: str) -> None:
    assert files(floor), floor
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files(floor)
        for name in imports(path)
        if (name in PROJECT and name not in MAY_USE[floor]) or name in NOT_FROM_OUTSIDE.get(floor, set())
    }
    assert not wrong, sorted(wrong)


def test_nothing_in_the_project_imports_the_command_line() -> None:
    users = {
        str(path.relative_to(ROOT)) for floor in PROJECT - {"ltc"} for path in files(floor) if "ltc" in imports(path)
    }
    assert users == set()
