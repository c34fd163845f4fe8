"""Take in every file waiting in an inbox folder: each file's kind is the start of its name (`care_days_2026-03.csv`
is care days), assessment results are recorded with their fees, and a loaded file moves to `loaded/<day>/`.

A file is read as UTF-8 unless its name ends with its encoding (`persons_2026-03.gb18030.csv`: GB18030, as Excel
on a Chinese system saves CSV) or the run's `encodings` name one for its kind; a byte-order mark at the start of a
file decides by itself. A file that cannot be read (empty, not in its encoding, a header without a required column)
is left in the inbox and named with the reason; it stops neither the files after it nor the good rows of any other
file, and the run ends failed, naming each such file, so that someone looks at it.

Loading a file is idempotent (its rows are upserted, its bad rows kept once per file), so a run that dies between
loading a file and moving it loads it again, to the same result."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from common.inbound_text import ALIASES, ENCODINGS, IntakeError, encoding_name
from common.settings import get_settings
from flows.intake import load
from flows.naming import today
from flows.record_assessments import record_assessments
from rules.errors import UserError
from tasks.calendar import is_working_day
from tasks.schemas import INBOUND

# Kinds that arrive by a route of their own: bank returns with the payment period they reconcile.
NOT_FROM_THE_INBOX = {"bank_returns"}
ENCODING_NAMES = {*ENCODINGS, *ALIASES}


def encoding_in_name(name: str) -> str | None:
    """The encoding a file's name ends with (`persons_2026-03.gb18030.csv`: gb18030), or None."""
    stem = name.removesuffix(".csv")
    if stem == name or "." not in stem:
        return None
    given = stem.rsplit(".", 1)[1].lower()
    return encoding_name(given) if given in ENCODING_NAMES else None


def kind_of(name: str) -> str | None:
    """The inbound kind a file's name starts with (the longest that matches), or None. An encoding at the end
    of the name is not part of it (`persons.gb18030.csv` is persons)."""
    if encoding_in_name(name):
        name = name.removesuffix(".csv").rsplit(".", 1)[0] + ".csv"
    kinds = sorted((k for k in INBOUND if k not in NOT_FROM_THE_INBOX), key=len, reverse=True)
    return next((k for k in kinds if name == f"{k}.csv" or name.startswith(f"{k}_")), None)


# Kinds in the order they depend on each other (a care day names a person and a provider).
ORDER = [
    "persons",
    "providers",
    "agencies",
    "assessors",
    "contributions",
    "applications",
    "assessment_results",
    "assessment_events",
    "hospital_stays",
    "care_days",
]


@flow(name="intake-inbox", flow_run_name="intake inbox {jurisdiction}")
def intake_inbox(
    jurisdiction: str,
    folder: str | None = None,
    working_days_only: bool = False,
    encodings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`folder` defaults to `$LTC_HOME/inbox/<jurisdiction>`. With `working_days_only` (as scheduled daily) a run
    on a day off in China does nothing. `encodings`: the encoding of each kind's files whose names state none
    (e.g. `{"persons": "gb18030"}`); UTF-8 otherwise."""
    by_kind = _encodings(encodings or {})
    day = today()
    if working_days_only and not is_working_day(day):
        return {"skipped": f"{day} is not a working day"}
    inbox = Path(folder) if folder else get_settings().home / "inbox" / jurisdiction
    inbox.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in inbox.glob("*.csv") if p.is_file())
    known = [(kind_of(p.name), p) for p in files]
    logger = get_run_logger()
    for kind, p in known:
        if kind is None:
            logger.warning("%s: the name does not start with a known kind; left in the inbox", p.name)
    loaded: list[dict[str, Any]] = []
    refused: list[dict[str, str]] = []
    for kind, p in sorted(((k, p) for k, p in known if k), key=lambda kp: (ORDER.index(kp[0]), kp[1].name)):
        encoding = encoding_in_name(p.name) or by_kind.get(kind, "utf-8")
        try:
            if kind == "assessment_results":
                report = record_assessments(str(p), jurisdiction, encoding)
            else:
                report = load(kind, str(p), encoding)
        except UserError as e:  # the file cannot be read at all: it waits in the inbox for a person
            logger.info("%s: left in the inbox: %s", p.name, e)  # the run's failure names it too
            refused.append({"file": p.name, "error": str(e)})
            continue
        done = inbox / "loaded" / day.isoformat()
        done.mkdir(parents=True, exist_ok=True)
        shutil.move(p, done / p.name)
        loaded.append(
            {
                "file": p.name,
                "encoding": encoding,
                **{k: report[k] for k in ("kind", "received", "accepted", "quarantined")},
            }
        )
    if refused:
        raise IntakeError(
            f"inbox {jurisdiction}: {len(loaded)} file(s) loaded, {len(refused)} left in the inbox: "
            + "; ".join(r["error"] for r in refused)
        )
    return {"loaded": loaded, "left": [p.name for k, p in known if k is None]}


def _encodings(given: dict[str, str]) -> dict[str, str]:
    """The run's encodings by kind, checked: a kind the inbox takes, an encoding it reads."""
    for kind in given:
        if kind not in INBOUND or kind in NOT_FROM_THE_INBOX:
            raise UserError(f"encodings: {kind!r} is not a kind the inbox takes")
    return {kind: encoding_name(value) for kind, value in given.items()}
