"""A person's error at the command line is one line and an exit code, never a traceback, and is answered before
any flow starts; policy errors are not retried; commands that only read the record never start Prefect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_HEADER = "person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base\n"
ASCII_ROW = "P1,Li,,nanning,A,employee,1000\n"
# Where the first GB18030 byte of late-gbk.csv is: after the header, 60,000 ASCII rows and "P2,".
LATE_BYTE = len(GOOD_HEADER) + 60_000 * len(ASCII_ROW) + 3


def ltc(args: list[str], home: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    # Prefect is pointed at a port where nothing listens and may not start a local server: a command that
    # reached for Prefect would fail with a connection error instead of the message asserted.
    env = {
        **os.environ,
        "LTC_HOME": str(home),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
        **extra,
    }
    env.pop("LTC_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "ltc.cli", *args], cwd=home, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "blank.csv").write_text("\ufeff\n \n", encoding="utf-8")
    (tmp_path / "gbk.csv").write_bytes((GOOD_HEADER + "P1,张三,,nanning,A,employee,1000\n").encode("gb18030"))
    (tmp_path / "nocol.csv").write_text("person_id,name\nP1,张三\n", encoding="utf-8")
    (tmp_path / "late-gbk.csv").write_bytes((GOOD_HEADER + ASCII_ROW * 60_000).encode() + "P2,张三\n".encode("gb18030"))
    # 0xFF begins no character in GB18030; the byte after "P1," of the first row.
    (tmp_path / "not-gb.csv").write_bytes(GOOD_HEADER.encode() + b"P1,\xff\xfe,,nanning,A,employee,1000\n")
    (tmp_path / "gb-nocol.csv").write_bytes("person_id,name\nP1,𠮷\n".encode("gb18030"))
    (tmp_path / "gb-empty.csv").write_bytes(b"\x84\x31\x95\x33\r\n")  # GB18030's byte-order mark, a line end
    head = "jurisdiction: nanning\ntitle: t\ndescription: d\n"
    (tmp_path / "variant.yaml").write_text(head + "parameters: {}\n", encoding="utf-8")
    rate = "billing.institutional_daily_rate.grade_3"
    entry = "{value: 60, reference: r, source: operator}"
    (tmp_path / "variant-operator.yaml").write_text(
        head + f"parameters:\n  {rate}:\n    values:\n      2026-03-01: {entry}\n", encoding="utf-8"
    )
    return tmp_path


CASES = {
    "period-13": (["run", "bill_month", "--period", "2026-13"], "'2026-13' is not of the form YYYY-MM"),
    "period-outside-pack": (["run", "bill_month", "--period", "2029-03"], "outside pack nanning"),
    "period-outside-pack-cycle": (
        ["run", "monthly_cycle", "--jurisdiction", "jinjiang", "--period", "2026-06"],
        "outside pack jinjiang",
    ),
    "month-of-a-yearly-pack": (
        ["run", "contributions", "--jurisdiction", "jinjiang", "--period", "2025-03"],
        "pack jinjiang takes contributions by the year: '2025-03' is not YYYY",
    ),
    "year-of-a-monthly-pack": (
        ["run", "contributions", "--period", "2026"],
        "pack nanning takes contributions by the month: '2026' is not YYYY-MM",
    ),
    "year-before-a-yearly-pack": (
        ["run", "contributions", "--jurisdiction", "jinjiang", "--period", "2022"],
        "outside pack jinjiang",
    ),
    "unknown-pack": (["run", "bill_month", "--period", "2026-03", "--jurisdiction", "x"], "no policy pack 'x'"),
    "bad-day": (["run", "decide_eligibility", "--as-of", "2026-02-30"], "'2026-02-30' is not a date"),
    "demo-period": (["demo", "--period", "2023-05"], "outside pack nanning"),
    "status-period": (["status", "--period", "26-03"], "'26-03' is not of the form YYYY-MM"),
    "empty-file": (["load", "persons", "empty.csv"], "empty.csv: the file is empty; nothing was loaded"),
    "blank-file": (["load", "persons", "blank.csv"], "blank.csv: the file is empty"),
    "not-utf8": (
        ["load", "persons", "gbk.csv"],
        f"gbk.csv: not utf-8 at byte {len(GOOD_HEADER) + 3}; saved as GBK/GB18030 (Excel on a Chinese system)? "
        "load it with --encoding gb18030",
    ),
    "not-utf8-late": (
        ["load", "persons", "late-gbk.csv"],
        f"late-gbk.csv: not utf-8 at byte {LATE_BYTE}; saved as GBK/GB18030 (Excel on a Chinese system)? "
        "load it with --encoding gb18030",
    ),
    "not-utf8-run": (
        ["run", "intake", "--kind", "persons", "--file", "gbk.csv"],
        f"gbk.csv: not utf-8 at byte {len(GOOD_HEADER) + 3}; saved as GBK/GB18030 (Excel on a Chinese system)? "
        "load it with --encoding gb18030",
    ),
    "not-gb18030": (
        ["load", "persons", "not-gb.csv", "--encoding", "gb18030"],
        f"not-gb.csv: not gb18030 at byte {len(GOOD_HEADER) + 3}; not a GB18030 file? leave out --encoding gb18030",
    ),
    "not-gb18030-run": (
        ["run", "record_assessments", "--file", "not-gb.csv", "--encoding", "gbk"],
        "not-gb.csv: not gb18030 at byte",
    ),
    "gb18030-missing-column": (
        ["load", "persons", "gb-nocol.csv", "--encoding", "gb18030"],
        "gb-nocol.csv: header lacks required column(s) id_number",
    ),
    "gb18030-empty": (["load", "persons", "gb-empty.csv"], "gb-empty.csv: the file is empty; nothing was loaded"),
    "unknown-encoding": (
        ["load", "persons", "gbk.csv", "--encoding", "big5"],
        "encoding 'big5': one of utf-8, gb18030",
    ),
    "encoding-without-file": (
        ["run", "bill_month", "--period", "2026-03", "--encoding", "gb18030"],
        "bill_month reads no file: --encoding is for intake",
    ),
    "missing-column": (["load", "persons", "nocol.csv"], "lacks required column(s) id_number, jurisdiction"),
    "no-file": (["load", "care_days", "nothere.csv"], "nothere.csv: no such file"),
    "unknown-kind": (["load", "payslips", "nocol.csv"], "unknown kind 'payslips'"),
    "results-file": (["run", "record_assessments", "--file", "empty.csv"], "empty.csv: the file is empty"),
    "unknown-person": (["explain", "P99999"], "no person P99999"),
    "whatif-reversed": (
        ["whatif", "--variant", "variant.yaml", "--from", "2026-03", "--to", "2026-02"],
        "--to 2026-02 is before --from 2026-03",
    ),
    "whatif-period": (
        ["whatif", "--variant", "variant.yaml", "--from", "2026-13", "--to", "2026-12"],
        "'2026-13' is not of the form YYYY-MM",
    ),
    "whatif-no-file": (
        ["whatif", "--variant", "nothere.yaml", "--from", "2026-01", "--to", "2026-02"],
        "nothere.yaml: cannot read the variant file",
    ),
    "whatif-source": (
        ["whatif", "--variant", "variant-operator.yaml", "--from", "2026-01", "--to", "2026-02"],
        "variant-operator.yaml: billing.institutional_daily_rate.grade_3 source must be one of variant",
    ),
    "whatif-no-record": (
        ["whatif", "--variant", "variant.yaml", "--from", "2026-01", "--to", "2026-02"],
        "no billed month of nanning on the record",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_persons_error_is_one_line_and_an_exit_code(case: str, files: Path) -> None:
    args, message = CASES[case]
    out = ltc(args, files)
    text = (out.stdout + out.stderr).strip()
    assert out.returncode == 2, text
    assert message in text, text
    assert "Traceback" not in text and len(text.splitlines()) <= 2, text
    assert not (files / "ltc.db").exists() or case == "unknown-person"  # nothing loaded, no schema made for it


def test_an_automation_prefect_would_refuse_is_one_line_before_the_server_is_reached(files: Path) -> None:
    """An operator's automations file with a Proactive wait Prefect refuses (under 10 s): the file, the automation
    and Prefect's reason, with nothing saved on the server (none is reachable here)."""
    import yaml

    from deployments.automations import AUTOMATIONS_YAML

    doc = yaml.safe_load(AUTOMATIONS_YAML.read_text(encoding="utf-8"))
    late = next(item for item in doc["automations"] if "within_seconds" in item)
    late["within_seconds"] = 5
    bad = files / "automations.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    out = ltc(["automations"], files, LTC_AUTOMATIONS_FILE=str(bad), LTC_OPS_NOTIFY_URL="json://127.0.0.1:9/ops")
    text = (out.stdout + out.stderr).strip()
    assert out.returncode == 2, text
    assert f"automations.yaml: automation {late['name']}:" in text and "10 seconds" in text, text
    assert "Traceback" not in text and len(text.splitlines()) <= 2, text


def test_debug_shows_the_traceback(files: Path) -> None:
    out = ltc(["--debug", "run", "bill_month", "--period", "2026-13"], files)
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "RulesError" in out.stderr


def test_reading_the_record_starts_no_prefect(files: Path) -> None:
    """status, review, explain, exports, the ledger and the audit log read the record only: with no Prefect API
    reachable and no local server allowed, each still answers."""
    for args, code in [
        (["db", "upgrade"], 0),
        (["status", "--period", "2026-03"], 0),
        (["export", "claims", "--period", "2026-03"], 0),
        (["export", "quarantine"], 0),
        (["ledger", "check"], 0),
        (["ledger", "balance"], 0),
        (["audit", "verify"], 0),
        (["review"], 0),
    ]:
        out = ltc(args, files)
        assert out.returncode == code, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, (args, out.stderr)


@pytest.mark.usefixtures("prefect_server")
def test_a_policy_error_inside_a_flow_is_not_retried(backend: str) -> None:
    """A flow started with a period outside the pack (from the UI or a schedule, where no command checked it
    first) fails on its first try, not after its retries."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from flows.bill_month import bill_month
    from rules.engine import RulesError

    with pytest.raises(RulesError, match="outside pack nanning"):
        bill_month("nanning", "2029-07")
    with get_client(sync_client=True) as client:
        runs = [
            r
            for r in client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="plan_parts")))
            if r.state is not None and "2029-07" in (r.state.message or "")
        ]
    assert runs and all(r.run_count == 1 for r in runs), [(r.name, r.run_count) for r in runs]


@pytest.mark.usefixtures("prefect_server")
def test_a_file_the_inbox_cannot_read_is_one_line_and_the_others_load(tmp_path: Path) -> None:
    """Inside a flow, where no check ran first: an empty file in the inbox is named in one line (exit 2), with no
    traceback from Prefect's console, and the readable GB18030 file beside it is loaded."""
    from prefect.settings import PREFECT_API_URL

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "hospital_stays_2026-03.csv").write_bytes(b"")
    persons = GOOD_HEADER + "P1,𠮷祥,450103195001011248,nanning,青秀区,employee,5000\n"
    (inbox / "persons_2026-03.gb18030.csv").write_bytes(persons.encode("gb18030"))
    out = ltc(["run", "intake_inbox", "--file", str(inbox)], tmp_path, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    text = (out.stdout + out.stderr).strip()
    assert out.returncode == 2, text
    assert text == (
        f"error: inbox nanning: 1 file(s) loaded, 1 left in the inbox: {inbox}/hospital_stays_2026-03.csv: "
        "the file is empty; nothing was loaded"
    )
    assert [p.name for p in inbox.glob("*.csv")] == ["hospital_stays_2026-03.csv"]
