"""What the command line checks before it starts any flow: the period, the day, the pack and the file a person
typed. Each failure is a `UserError` with a message that says what to correct; nothing here starts Prefect, so a
mistyped period is answered in a moment, not after a server has started and a task has been retried."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from pathlib import Path

from rules.engine import load_pack, period_bounds, period_start
from rules.errors import UserError
from rules.inputs import PERIODS

# Flows whose periods may be a year (contributions of a yearly pack).
YEARLY_OK = {"contributions"}
CHUNK = 1 << 20


def pack(jurisdiction: str) -> None:
    load_pack(jurisdiction)  # RulesError naming the known packs


def period(value: str, jurisdiction: str, flow: str = "") -> str:
    """A period the pack is in force for: `YYYY-MM`, or for contributions the pack's own periods (its pack.yaml
    `period`: months, years or both; both where it does not say)."""
    from rules.packinfo import periods

    p = load_pack(jurisdiction)
    if flow in YEARLY_OK:
        allowed = periods(jurisdiction) or ("month", "year")
        kind = "year" if len(value) == 4 else "month"
        if kind not in allowed:
            form = " or ".join(PERIODS[a] for a in allowed)
            raise UserError(f"pack {jurisdiction} takes contributions by the {allowed[0]}: {value!r} is not {form}")
        if kind == "year":  # in force on the year's first day, or the pack's own first day in that year
            start = period_start(value, p)  # RulesError: not YYYY
            p.check_date(start if start.year == int(value) else dt.date(int(value), 12, 31))
            return value
    period_bounds(value)  # RulesError: not of the form YYYY-MM
    p.check_period(value)  # RulesError: outside the pack, with its dates
    return value


def day(value: str, option: str = "--as-of") -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r} is not a date of the form YYYY-MM-DD") from None


def inbound_file(kind: str, path: Path, encoding: str = "utf-8") -> str:
    """An inbound file that can be read as it is: it exists, is not empty, decodes in its encoding (the one its
    byte-order mark names, else `encoding`) from the first byte to the last, and its header has every column the
    kind requires. Returns the encoding it is read in."""
    from common import inbound_text
    from tasks.schemas import INBOUND

    if kind not in INBOUND:
        raise UserError(f"unknown kind {kind!r}; one of {', '.join(INBOUND)}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    used = inbound_text.encoding_of(path, encoding)
    if inbound_text.is_blank(path):
        raise UserError(f"{path}: the file is empty; nothing was loaded")
    hint = {
        "utf-8": "saved as GBK/GB18030 (Excel on a Chinese system)? load it with --encoding gb18030",
        "gb18030": "not a GB18030 file? leave out --encoding gb18030 (UTF-8 is the default)",
    }[used]
    head = ""
    for text in inbound_text.decoded(path, used, hint):
        if len(head) < CHUNK:
            head += text
    header = [h.strip() for h in next(csv.reader(io.StringIO(head.splitlines()[0])), [])]
    missing = [c.header for c in INBOUND[kind].columns if c.required and c.header not in header]
    if missing:
        raise UserError(f"{path}: header lacks required column(s) {', '.join(missing)} for {kind}")
    return used


class QuietUserErrors(logging.Filter):
    """On the console of a command, Prefect's own report of a flow or task that failed on a person's error (its
    traceback, and its 'Finished in state Failed' line) is left out: the command says it once, in one line. Every
    other record passes; the Prefect UI keeps them all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UserError):
            return False
        if record.levelno >= logging.ERROR and record.name.startswith("prefect"):
            message = record.getMessage()
            return not any(f"{name}:" in message or f"{name}(" in message for name in _user_error_names())
        return True


def _user_error_names() -> set[str]:
    names, todo = set(), [UserError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def quiet_user_errors_on_the_console() -> None:
    """Add `QuietUserErrors` to the console handlers Prefect installed (idempotent)."""
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "PrefectConsoleHandler" and not any(
            isinstance(f, QuietUserErrors) for f in handler.filters
        ):
            handler.addFilter(QuietUserErrors())


def billed_record(jurisdiction: str) -> str:
    """The last month of the pooling area billed on the record; a `UserError` where the record holds none (a new
    home, another database), said before anything starts (and without making an empty database file)."""
    from sqlalchemy import inspect

    from common.settings import get_settings
    from storage.db import get_engine
    from tasks.whatif import last_closed

    url = get_settings().database_url
    hint = f"no billed month of {jurisdiction} on the record: load and bill a month first (or run `ltc demo`)"
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise UserError(hint)
    if "claim_line" not in inspect(get_engine()).get_table_names():
        raise UserError(hint)
    last = last_closed(jurisdiction)
    if last is None:
        raise UserError(hint)
    return last
