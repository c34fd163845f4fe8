"""A pack's dates of effect are parameters an operator sets like any other value: in the override file
`$LTC_RULES_OVERRIDES/<pack>.yaml`, with `source: operator`. The Jilin draft fixes no date of effect; an area that
already runs the scheme (已建制统筹区) sets its own, and its scheme start, and bills months before the assumed
2026-01-01 under the draft, through the pack's formulas and through `ltc run bill_month`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from ltc.cli import app
from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from rules.cases import build_inputs
from rules.engine import RulesError, load_pack
from rules.formulas import resolve
from storage import models as m
from storage.db import session_scope, upgrade

ROOT = Path(__file__).resolve().parent.parent
OPERATOR = "长春市医疗保障局 关于长期护理保险制度衔接的通知 (test: the area's own decision)"
# An established area: the draft's rules from 2025-01-01, the scheme since 2022-07-01. The resident rate for 2025 is
# an illustrative value (the provincial standard is not among the sources), needed by the demo's residents.
JAN_2025 = dt.date(2025, 1, 1)
ILLUSTRATIVE = "ILLUSTRATIVE test value (示例数值)"
OVERRIDE = {
    "pack.valid_from": {"values": {JAN_2025: {"value": JAN_2025, "reference": OPERATOR, "source": "operator"}}},
    "scheme.start_date": {
        "values": {JAN_2025: {"value": dt.date(2022, 7, 1), "reference": OPERATOR, "source": "operator"}}
    },
    "contributions.resident.rate": {
        "values": {
            JAN_2025: {"value": 0.00125, "reference": ILLUSTRATIVE, "source": "operator"},
            dt.date(2026, 1, 1): {"value": 0.00125, "reference": ILLUSTRATIVE, "source": "operator"},
        }
    },
}
MARCH_2025 = dt.date(2025, 3, 1)


@pytest.fixture
def overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "overrides"
    folder.mkdir()
    (folder / "jilin.yaml").write_text(yaml.safe_dump(OVERRIDE, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("LTC_RULES_OVERRIDES", str(folder))
    return folder


def test_the_assumed_dates_of_effect_are_assumptions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTC_RULES_OVERRIDES", str(tmp_path))  # no override file
    pack = load_pack("jilin")
    assert (pack.valid_from, pack.valid_to) == (dt.date(2026, 1, 1), None)
    assert {"pack.valid_from", "pack.valid_to", "scheme.start_date"} <= set(pack.assumptions())
    assert pack.param("pack.valid_to").at(pack.valid_from) == "open"
    with pytest.raises(RulesError, match=r"2025-03-01 is outside pack jilin .*2026-01-01\.\.open"):
        resolve(pack, "bill", MARCH_2025)
    # A pack whose document fixes its dates cites the document.
    assert load_pack("nanning").param("pack.valid_to").cite(dt.date(2026, 1, 1))["source"] == "document"


@pytest.mark.usefixtures("overrides")
def test_the_operator_sets_the_date_of_effect_and_the_scheme_start() -> None:
    pack = load_pack("jilin")
    assert pack.valid_from == dt.date(2025, 1, 1) and pack.valid_to is None
    for name in ("pack.valid_from", "scheme.start_date"):
        cited = pack.param(name).cite(MARCH_2025)
        assert (cited["source"], cited["reference"]) == ("operator", OPERATOR)
        assert name in pack.operator_values() and name not in pack.assumptions()
    assert pack.param("scheme.start_date").at(MARCH_2025) == dt.date(2022, 7, 1)
    # The pack's own values are in force from the operator's date of effect, their clauses and sources kept.
    ratio = pack.param("billing.ratio.institutional_resident").cite(MARCH_2025)
    assert (ratio["value"], ratio["from"], ratio["source"]) == ("0.5", "2025-01-01", "document")
    assert pack.param("contributions.resident.rate").at(dt.date(2028, 1, 1)) == 0.00125  # later entries stay
    for name, p in pack.parameters.items():
        if p.set_by is None:
            p.at(pack.valid_from)  # every value the draft gives is there on the first day
        else:
            assert name != "contributions.resident.rate" or p.at(pack.valid_from) == 0.00125
    # The formulas in force from the date of effect follow it.
    assert resolve(pack, "bill", MARCH_2025) is resolve(pack, "bill", dt.date(2026, 3, 1))


@pytest.mark.usefixtures("overrides")
def test_the_packs_bill_formula_bills_a_month_before_the_assumed_start() -> None:
    pack = load_pack("jilin")
    case = {
        "input": {
            "persons": [{"person_id": "P1", "insurance_type": "employee"}],
            "entitlements": [{"person_id": "P1", "grade": 4, "start_date": "2025-01-01"}],
            "care": [
                {
                    "person_id": "P1",
                    "provider_id": "H1",
                    "care_mode": "institutional",
                    "amount_fen": 10000,
                    "dates": "2025-03-01..2025-03-31",
                }
            ],
            "contributions": [{"person_id": "P1", "periods": "2022-07..2025-03", "due_fen": 1250, "paid_fen": 1250}],
        }
    }
    lines = resolve(pack, "bill", MARCH_2025)(build_inputs(case), pack, "2025-03")
    # 吉林省实施方案（征求意见稿） 二(四)2: 50% + 20 points for an employee = 70% of 31 x 100.00 = 2170.00.
    assert lines.select("gross_fen", "payable_fen").row(0) == (310000, 217000)
    assert "pack.valid_from" in lines["rule_params"][0].to_list()


def _ltc(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    # Prefect is pointed at a port where nothing listens: the command must be answered before any flow starts.
    full = {**os.environ, "LTC_HOME": str(home), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    full["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"
    full.pop("LTC_DATABASE_URL", None)
    full.pop("LTC_RULES_OVERRIDES", None)
    return subprocess.run(
        [sys.executable, "-m", "ltc.cli", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120
    )


def test_ltc_run_bill_month_refuses_a_month_before_the_assumed_start(tmp_path: Path) -> None:
    out = _ltc(["run", "bill_month", "--jurisdiction", "jilin", "--period", "2025-06"], tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "2025-06-01 is outside pack jilin" in out.stderr and "2026-01-01..open" in out.stderr


@pytest.mark.usefixtures("prefect_server")
def test_an_established_area_bills_2025_under_the_draft(
    overrides: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LTC_HOME", str(tmp_path))
    monkeypatch.setenv("LTC_DATABASE_URL", f"sqlite:///{tmp_path}/ltc.db")
    upgrade()
    summary = run_demo("jilin", "2025-06", 5, DemoSize(insured=160, applicants=30, providers=3, agencies=2))
    assert summary["claim_lines"] > 0 and summary["payable_fen"] > 0
    assert any("pack.valid_from" in n and "scheme.start_date" in n for n in summary["notes"] if "operator" in n)
    with session_scope() as s:
        line = s.scalars(select(m.ClaimLine).where(m.ClaimLine.period == "2025-06").limit(1)).one()
        decision = s.scalars(select(m.EligibilityDecision).limit(1)).one()
    cited = {c["parameter"]: c for c in (json.loads(line.rules) if isinstance(line.rules, str) else line.rules)}
    assert (cited["pack.valid_from"]["value"], cited["pack.valid_from"]["source"]) == ("2025-01-01", "operator")
    rules = {
        c["parameter"]: c for c in (json.loads(decision.rules) if isinstance(decision.rules, str) else decision.rules)
    }
    assert rules["scheme.start_date"]["source"] == rules["pack.valid_from"]["source"] == "operator"
    assert line.policy_draft is True

    runner = CliRunner()
    again = runner.invoke(app, ["run", "bill_month", "--jurisdiction", "jilin", "--period", "2025-06"])
    assert again.exit_code == 0, again.output
    monkeypatch.setenv("LTC_RULES_OVERRIDES", str(tmp_path / "none"))  # without the operator's file
    refused = runner.invoke(app, ["run", "bill_month", "--jurisdiction", "jilin", "--period", "2025-06"])
    assert isinstance(refused.exception, RulesError) and "outside pack jilin" in str(refused.exception)
    with session_scope() as s:
        assert set(s.scalars(select(m.ClaimLine.period))) == {"2025-06"}
