"""Every worked case of every pack, named after its clause."""

from __future__ import annotations

from typing import Any

import pytest

from rules.cases import load_cases, matches, run_case
from rules.engine import RulesError, pack_ids

CASES = [(pid, name, case) for pid in pack_ids() for name, case in load_cases(pid)]


@pytest.mark.parametrize(("pack_id", "name", "case"), CASES, ids=[c[1] for c in CASES])
def test_worked_case(pack_id: str, name: str, case: dict[str, Any]) -> None:
    if "error" in case:
        with pytest.raises(RulesError, match=case["error"]):
            run_case(pack_id, case)
        return
    rows = run_case(pack_id, case)
    expected = case["output"]
    assert len(rows) == len(expected), rows
    for exp in expected:
        assert any(matches(exp, row) for row in rows), f"expected {exp}, got {rows}"
