"""`ltc`: the operator's command line."""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Prefect gives its local (ephemeral) server 20 s to start, counted in its own sleeps: a busy machine or a first
# start on a fresh database takes longer. Commands that run flows wait up to three minutes instead.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Long-term care insurance claims: intake, assessment, eligibility, billing, payment.")
db_app = typer.Typer(help="The database schema.")
app.add_typer(db_app, name="db")
ledger_app = typer.Typer(help="The fund's double-entry ledger.")
app.add_typer(ledger_app, name="ledger")
report_app = typer.Typer(help="Reports.")
app.add_typer(report_app, name="report")
notices_app = typer.Typer(help="The outbox of notices.")
app.add_typer(notices_app, name="notices")
audit_app = typer.Typer(help="The hash-chained audit log of decisions and reads of persons' records.")
app.add_typer(audit_app, name="audit")
approvers_app = typer.Typer(help="The roster of persons who may release a payout (four eyes).")
app.add_typer(approvers_app, name="approvers")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error is one line, however long: the terminal wraps it
DEBUG = {"on": os.environ.get("LTC_DEBUG", "") not in ("", "0")}


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of any error")] = False,
) -> None:
    """Long-term care insurance claims: intake, assessment, eligibility, billing, payment."""
    if debug:
        DEBUG["on"] = True


FLOWS = [
    "intake_inbox",
    "intake",
    "contributions",
    "schedule_assessments",
    "record_assessments",
    "assessment_changes",
    "send_reminders",
    "decide_eligibility",
    "bill_month",
    "issue_statements",
    "pay_providers",
    "reconcile_payments",
    "send_notices",
    "monthly_cycle",
]


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema."""
    from common.settings import get_settings
    from storage.db import upgrade

    upgrade()
    console.print(f"schema up to date: {_safe_url(get_settings().database_url)}")


@ledger_app.command("check")
def ledger_check() -> None:
    """Every posting balances and all debits equal all credits; exit 1 otherwise."""
    from storage.db import session_scope, upgrade
    from tasks import ledger

    upgrade()
    with session_scope() as s:
        bad = ledger.unbalanced(s)
        totals = ledger.totals(s)
    for ref, d, c in bad:
        console.print(f"[red]{ref}: debits {d} fen, credits {c} fen[/]")
    console.print(f"debits {totals['debit_fen']} fen, credits {totals['credit_fen']} fen, {len(bad)} unbalanced")
    raise typer.Exit(0 if not bad and totals["debit_fen"] == totals["credit_fen"] else 1)


@ledger_app.command("balance")
def ledger_balance(
    fund: Annotated[str, typer.Option(help="policy pack (fund)")] = "nanning",
    period: Annotated[str | None, typer.Option(help="YYYY-MM; all periods if omitted")] = None,
) -> None:
    """Each account's balance (debits minus credits), in yuan."""
    from common.formatting import yuan
    from storage.db import session_scope, upgrade
    from tasks import ledger

    upgrade()
    with session_scope() as s:
        for account, fen in sorted(ledger.trial_balance(s, fund, period).items()):
            console.print(f"{account:<28} {yuan(fen, grouping=True):>20}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit log's hash chain; name every entry edited, removed or inserted out of turn; exit 1 if any."""
    from storage.db import session_scope, upgrade
    from tasks import audit

    upgrade()
    with session_scope() as s:
        n, problems = audit.verify(s)
    for p in problems:
        console.print(f"[red]audit entry {p.entry_id}: {p.what}[/]")
    console.print(f"{n} audit entries, {len(problems)} problems")
    raise typer.Exit(1 if problems else 0)


@audit_app.command("show")
def audit_show(
    subject: Annotated[str | None, typer.Option(help="only entries about this subject (a person, a batch)")] = None,
    last: Annotated[int, typer.Option(help="how many of the latest entries")] = 20,
) -> None:
    """The latest audit entries."""
    from sqlalchemy import select

    from storage.db import session_scope, upgrade
    from storage.models import AuditEntry

    upgrade()
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(last)
    if subject:
        stmt = stmt.where(AuditEntry.subject == subject)
    with session_scope() as s:
        for e in reversed(s.scalars(stmt).all()):
            typer.echo(f"{e.id}\t{e.at:%Y-%m-%d %H:%M:%S}\t{e.actor}\t{e.action}\t{e.subject}\t{e.detail}")


@approvers_app.command("add")
def approvers_add(
    name: Annotated[str, typer.Argument(help="the name the approver types in the approval form")],
    role: Annotated[str, typer.Option(help="their role, e.g. 基金财务科科长")],
    notify_url: Annotated[
        str,
        typer.Option(
            help="where their approval codes go, a channel of their own: an apprise URL, env:NAME or block:NAME "
            "(not the shared file outbox)"
        ),
    ],
    language: Annotated[str, typer.Option(help="zh_CN or en")] = "zh_CN",
) -> None:
    """Add a person to the roster (or update them). Each payout that waits for approval sends them a one-time code."""
    from storage.db import session_scope, upgrade
    from tasks.approval import add_approver

    if language not in ("zh_CN", "en"):
        console.print(f"[red]language {language!r}: zh_CN or en[/]")
        raise typer.Exit(2)
    upgrade()
    with session_scope() as s:
        a = add_approver(s, name, role, notify_url, language)
        console.print(f"approver {a.name} ({a.role}) on the roster")


@approvers_app.command("list")
def approvers_list(
    all_: Annotated[bool, typer.Option("--all", help="also those removed")] = False,
) -> None:
    """The roster: name, role, channel (its scheme only), language, since."""
    from storage.db import session_scope, upgrade
    from tasks.approval import roster

    upgrade()
    table = Table(title="approvers")
    for column in ("name", "role", "channel", "language", "since", "active"):
        table.add_column(column)
    with session_scope() as s:
        for a in roster(s, active_only=not all_):
            channel = (a.notify_url or "outbox").split(":", 1)[0]
            table.add_row(a.name, a.role, channel, a.language, f"{a.added_at:%Y-%m-%d}", "yes" if a.active else "no")
    console.print(table)


@approvers_app.command("remove")
def approvers_remove(name: Annotated[str, typer.Argument(help="the approver's name")]) -> None:
    """Take a person off the roster; codes they hold can no longer release a payout."""
    from storage.db import session_scope, upgrade
    from tasks.approval import remove_approver

    upgrade()
    with session_scope() as s:
        if not remove_approver(s, name):
            console.print(f"[red]no approver {name!r} on the roster[/]")
            raise typer.Exit(2)
    console.print(f"{name} removed from the roster")


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


ENCODING_HELP = (
    "the file's encoding: utf-8 (a byte-order mark is accepted) or gb18030 (as Excel on a Chinese system saves "
    "CSV; GBK files too)"
)


@app.command()
def load(
    kind: Annotated[
        str,
        typer.Argument(
            help="persons, contributions, providers, agencies, assessors, applications, "
            "assessment_results, assessment_events, care_days or hospital_stays"
        ),
    ],
    file: Annotated[Path, typer.Argument(help="CSV with a header")],
    encoding: Annotated[str, typer.Option(help=ENCODING_HELP)] = "utf-8",
) -> None:
    """Load an inbound file. Exit 0: clean; 1: some rows quarantined; 2: the file could not be loaded."""
    from ltc import checks

    encoding = checks.inbound_file(kind, file, encoding)
    from flows.intake import intake
    from storage.db import upgrade
    from tasks.intake import IntakeError

    upgrade()
    _quiet_flows()
    try:
        with console.status(f"loading {kind} from {file.name}: parse, validate, write"):
            report = intake(kind, str(file), encoding)
    except IntakeError as e:
        console.print(f"[red]failed:[/] {e}")
        raise typer.Exit(2) from None
    for err in report["errors"]:
        typer.echo(f"{err['file']}:{err['line']}: {err['field']}: {err['reason']}")
    console.print(
        f"{kind}: received {report['received']}, accepted {report['accepted']}, quarantined {report['quarantined']}"
    )
    raise typer.Exit(0 if report["quarantined"] == 0 else 1)


@app.command()
def run(
    flow: Annotated[str, typer.Argument(help=", ".join(FLOWS))],
    period: Annotated[str | None, typer.Option(help="billing month, YYYY-MM")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="decision date, YYYY-MM-DD")] = None,
    jurisdiction: Annotated[str, typer.Option(help="policy pack")] = "nanning",
    kind: Annotated[str | None, typer.Option(help="inbound kind (intake)")] = None,
    file: Annotated[
        str | None, typer.Option(help="inbound file (intake, record_assessments, reconcile_payments: bank return)")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option(help=ENCODING_HELP + "; for intake_inbox, of every file whose name states none")
    ] = None,
) -> None:
    """Run one flow through Prefect."""
    from storage.db import upgrade

    encoding = _check_run(flow, period, as_of, jurisdiction, kind, file, encoding)
    upgrade()
    _quiet_flows()
    with console.status(f"running {flow} ({jurisdiction}{' ' + period if period else ''})"):
        result = _run_flow(flow, period, as_of, jurisdiction, kind, file, encoding)
    console.print_json(json.dumps(result, ensure_ascii=False, default=str))


# The inbound kind of the file each flow reads.
FILE_KINDS = {
    "record_assessments": "assessment_results",
    "assessment_changes": "assessment_events",
    "reconcile_payments": "bank_returns",
}
PERIOD_FLOWS = {
    "contributions",
    "bill_month",
    "issue_statements",
    "pay_providers",
    "reconcile_payments",
    "monthly_cycle",
}


def _check_run(
    flow: str,
    period: str | None,
    as_of: str | None,
    jurisdiction: str,
    kind: str | None,
    file: str | None,
    encoding: str | None = None,
) -> str:
    """Everything a person typed, checked before any flow starts. Returns the encoding to read the file in."""
    from common.inbound_text import encoding_name
    from ltc import checks
    from rules.errors import UserError

    if flow not in FLOWS:
        console.print(f"[red]unknown flow {flow}[/]; one of {', '.join(FLOWS)}")
        raise typer.Exit(2)
    checks.pack(jurisdiction)
    if flow in PERIOD_FLOWS:
        checks.period(_need(period, "period", flow), jurisdiction, flow)
    if flow in ("send_reminders", "decide_eligibility"):
        checks.day(_need(as_of, "as-of", flow))
    stated = encoding_name(encoding or "utf-8")
    if encoding is not None and flow not in ("intake", "intake_inbox", *FILE_KINDS):
        raise UserError(f"{flow} reads no file: --encoding is for intake, intake_inbox and {', '.join(FILE_KINDS)}")
    if flow == "intake":
        return checks.inbound_file(_need(kind, "kind", flow), Path(_need(file, "file", flow)), stated)
    if flow in FILE_KINDS and (file or flow != "reconcile_payments"):
        return checks.inbound_file(FILE_KINDS[flow], Path(_need(file, "file", flow)), stated)
    return stated


# Settings the flows of this command run under, held until the process ends.
_FLOW_SETTINGS = contextlib.ExitStack()


def _quiet_flows() -> None:
    """Prefect's console reports of a person's error are left to the command's own one line (not with --debug).

    Flow runs against the local server started for this command send no heartbeats (`local_run_settings`; the
    demo runs seventeen flows)."""
    from flows.runners import local_run_settings

    _FLOW_SETTINGS.enter_context(local_run_settings())
    if not DEBUG["on"]:
        # Prefect installs its console handler when its logging is set up, which `import prefect` alone does not
        # do (only the first import of a flow would, after this): set it up first, then filter it.
        from prefect.logging.configuration import ensure_logging_setup

        from ltc.checks import quiet_user_errors_on_the_console

        ensure_logging_setup()
        quiet_user_errors_on_the_console()


def _need(value: str | None, name: str, flow: str) -> str:
    if value is None:
        console.print(f"[red]{flow} needs --{name}[/]")
        raise typer.Exit(2)
    return value


def _run_flow(
    flow: str,
    period: str | None,
    as_of: str | None,
    jurisdiction: str,
    kind: str | None,
    file: str | None,
    encoding: str = "utf-8",
) -> Any:
    if flow == "intake_inbox":
        from flows.intake_inbox import ORDER, intake_inbox

        return intake_inbox(
            jurisdiction, file, encodings=dict.fromkeys(ORDER, encoding) if encoding != "utf-8" else None
        )
    if flow == "intake":
        from flows.intake import intake

        return intake(_need(kind, "kind", flow), _need(file, "file", flow), encoding)
    if flow == "contributions":
        from flows.contributions import contributions

        return contributions(jurisdiction, _need(period, "period", flow))
    if flow == "schedule_assessments":
        from flows.schedule_assessments import schedule_assessments

        return schedule_assessments(jurisdiction)
    if flow == "record_assessments":
        from flows.record_assessments import record_assessments

        return record_assessments(_need(file, "file", flow), jurisdiction, encoding)
    if flow == "assessment_changes":
        from flows.assessment_changes import assessment_changes

        return assessment_changes(_need(file, "file", flow), jurisdiction, encoding)
    if flow == "send_reminders":
        from flows.send_reminders import send_reminders

        return send_reminders(jurisdiction, dt.date.fromisoformat(_need(as_of, "as-of", flow)))
    if flow == "decide_eligibility":
        from flows.decide_eligibility import decide_eligibility

        return decide_eligibility(jurisdiction, dt.date.fromisoformat(_need(as_of, "as-of", flow)))
    if flow == "bill_month":
        from flows.bill_month import bill_month

        return bill_month(jurisdiction, _need(period, "period", flow))
    if flow == "issue_statements":
        from flows.issue_statements import issue_statements

        return issue_statements(jurisdiction, _need(period, "period", flow))
    if flow == "pay_providers":
        from flows.pay_providers import pay_providers

        return pay_providers(jurisdiction, _need(period, "period", flow))
    if flow == "reconcile_payments":
        from flows.reconcile_payments import reconcile_payments

        return reconcile_payments(jurisdiction, _need(period, "period", flow), file, encoding)
    if flow == "send_notices":
        from flows.send_notices import send_notices

        return send_notices()
    if flow == "monthly_cycle":
        from flows.monthly_cycle import monthly_cycle

        return monthly_cycle(jurisdiction, _need(period, "period", flow))
    console.print(f"[red]unknown flow {flow}[/]; one of {', '.join(FLOWS)}")
    raise typer.Exit(2)


@app.command()
def export(
    kind: Annotated[str, typer.Argument(help="claims, payments, decisions, notices, quarantine, held, flagged, fraud")],
    period: Annotated[str | None, typer.Option(help="only this period (claims, payments, fraud)")] = None,
    out: Annotated[Path | None, typer.Option(help="file to write (default: standard output)")] = None,
) -> None:
    """Export a table of the record as CSV. ID numbers are masked."""
    from ltc.exports import export_rows

    try:
        header, rows = export_rows(kind, period)
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    stream = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    w = csv.writer(stream)
    w.writerow(header)
    w.writerows(rows)
    if out:
        stream.close()
        console.print(f"{len(rows)} rows written to {out}")


@app.command("explain")
def explain_cmd(
    person: Annotated[str, typer.Argument(help="person id")],
    period: Annotated[str | None, typer.Option(help="only this billing month, YYYY-MM")] = None,
) -> None:
    """Print how a person's decisions and claims follow from the policy's clauses."""
    from ltc.explain import explain
    from storage.db import upgrade

    upgrade()
    try:
        typer.echo(explain(person, period))
    except LookupError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None


@notices_app.command("render")
def notices_render() -> None:
    """Render the quarantined notices again, once their template or data is fixed; those that render are sent
    by the next send-notices run."""
    from tasks.notices import render_quarantined

    out = render_quarantined()
    console.print(f"released {out['released']}, still quarantined {out['quarantined']}")
    raise typer.Exit(0 if out["quarantined"] == 0 else 1)


@report_app.command("fund")
def report_fund(
    period: Annotated[str, typer.Option(help="the last month shown, YYYY-MM")],
    jurisdiction: Annotated[str, typer.Option(help="policy pack")] = "nanning",
    out: Annotated[
        Path | None, typer.Option(help="the HTML file (default: $LTC_HOME/reports/fund-<pack>-<period>.html)")
    ] = None,
) -> None:
    """A self-contained HTML fund report with charts: contributions and benefits by month, spending by care mode
    and grade, beneficiaries, assessment and agency costs against the pack's ceiling, months of reserve."""
    from common.settings import get_settings
    from ltc.fund_report import write_fund_report

    target = out or get_settings().home / "reports" / f"fund-{jurisdiction}-{period}.html"
    console.print(f"wrote {write_fund_report(jurisdiction, period, target)}")


@app.command("whatif")
def whatif_cmd(
    variant: Annotated[Path, typer.Option(help="the variant file: the parameters a proposal changes (YAML)")],
    from_: Annotated[str, typer.Option("--from", help="the first month replayed, YYYY-MM")],
    to: Annotated[str, typer.Option("--to", help="the last month replayed, YYYY-MM")],
    jurisdiction: Annotated[str, typer.Option(help="policy pack")] = "nanning",
    years: Annotated[int, typer.Option(help="years projected after the last month", min=1, max=50)] = 10,
    out: Annotated[
        Path | None, typer.Option(help="the scenario's folder (default: $LTC_HOME/whatif/<pack>-<from>-<to>-<id>)")
    ] = None,
) -> None:
    """What a proposal would cost: bill the months again on the record under the pack in force and under the
    variant, side by side, carry the fund forward, and write the scenario (Parquet, CSV, HTML report). The record is
    not changed."""
    from ltc import checks
    from rules.errors import UserError
    from rules.variants import load_variant

    checks.pack(jurisdiction)
    checks.period(from_, jurisdiction)
    checks.period(to, jurisdiction)
    if to < from_:
        raise UserError(f"--to {to} is before --from {from_}")
    load_variant(variant, jurisdiction)  # RulesError naming the file and what is wrong
    checks.billed_record(jurisdiction)
    _quiet_flows()
    from flows.whatif import whatif

    with console.status(f"replaying {jurisdiction} {from_}..{to} under both packs"):
        result = whatif(jurisdiction, str(variant), from_, to, years, str(out) if out else None)
    console.print_json(json.dumps(result, ensure_ascii=False, default=str))


@app.command("status")
def status_cmd(
    jurisdiction: Annotated[str, typer.Option(help="policy pack")] = "nanning",
    period: Annotated[str | None, typer.Option(help="YYYY-MM (default: last month)")] = None,
) -> None:
    """The period's state at a glance: applications, assessments, claims, batches, approval, notices."""
    from flows.naming import last_month
    from ltc import checks
    from ltc.status import status

    checks.pack(jurisdiction)
    period = period or last_month()
    checks.period(period, jurisdiction)
    table = Table(title=f"{jurisdiction} · {period}")
    table.add_column("")
    table.add_column("", justify="right")
    for label, value in status(jurisdiction, period):
        table.add_row(label, str(value))
    console.print(table)


@app.command("review")
def review_cmd() -> None:
    """What needs a person: quarantined rows, held assessment results, failed or quarantined notices.
    Exit 1 when anything waits."""
    from ltc.status import review

    waiting = review()
    for title, rows in waiting.items():
        table = Table(title=f"{title}: {len(rows)}")
        for column in rows[0] if rows else ["none"]:
            table.add_column(column)
        for r in rows[:200]:
            table.add_row(*(str(v) for v in r.values()))
        console.print(table)
    raise typer.Exit(1 if any(waiting.values()) else 0)


@app.command()
def serve() -> None:
    """Serve every flow as a deployment with the schedules of deployments/prefect.yaml (or LTC_DEPLOYMENTS_FILE),
    from this process, until stopped (a Prefect server at PREFECT_API_URL keeps the schedules and runs). With
    LTC_OPS_NOTIFY_URL set, the operators' Automations are set up first (as `ltc automations` does)."""
    from deployments.serve import main as serve_all

    if os.environ.get("LTC_OPS_NOTIFY_URL"):
        automations()
    serve_all()


@app.command()
def automations() -> None:
    """Create or update, on the Prefect server, the Automations of deployments/automations.yaml that notify the
    operations channel (LTC_OPS_NOTIFY_URL) when a run fails or crashes, a scheduled billing or payment run is
    late, or a payout waits for approval. Running it again creates nothing new."""
    import asyncio

    from deployments.automations import SetupError, set_up

    try:
        done = asyncio.run(set_up())
    except SetupError as e:
        err_console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    for name, what in done.items():
        console.print(f"{name}: {what}")


@app.command()
def docs() -> None:
    """Regenerate docs/ from the code (inbound formats)."""
    from ltc.docs import write_docs

    for path in write_docs():
        console.print(f"wrote {path}")


@app.command()
def demo(
    period: Annotated[
        str | None, typer.Option(help="the month to bill, YYYY-MM (default: the pack's demo month)")
    ] = None,
    jurisdiction: Annotated[str, typer.Option(help="policy pack")] = "nanning",
    seed: Annotated[int, typer.Option(help="seed of the synthetic population")] = 1,
    insured: Annotated[int, typer.Option(help="insured persons")] = 2000,
    applicants: Annotated[int, typer.Option(help="applications")] = 200,
) -> None:
    """A full monthly cycle on a synthetic population, through Prefect, ending with a summary."""
    from ltc.demo import PROFILES, DemoSize
    from ltc.pipeline import run_demo

    if jurisdiction not in PROFILES:
        console.print(f"[red]no demo profile for {jurisdiction}[/]; one of {', '.join(PROFILES)}")
        raise typer.Exit(2)
    period = period or PROFILES[jurisdiction].period
    from ltc import checks

    checks.period(period, jurisdiction)
    _quiet_flows()
    summary = run_demo(jurisdiction, period, seed, DemoSize(insured=insured, applicants=applicants), console)
    table = Table(title=f"{summary['pack']} · {period}")
    table.add_column("")
    table.add_column("", justify="right")
    for k, v in summary["rows"]:
        table.add_row(k, str(v))
    console.print(table)
    for note in summary["notes"]:
        console.print(note)


def main() -> None:
    """The `ltc` command: a person's error (`UserError`) is one line on standard error and exit 2; a bug keeps its
    traceback. `--debug` (or LTC_DEBUG=1) shows the traceback of either."""
    from rules.errors import UserError

    try:
        app()
    except UserError as e:
        if DEBUG["on"] or "--debug" in sys.argv[1:]:
            raise
        err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
