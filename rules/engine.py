"""The rules engine: policy packs of dated, cited parameters, resolved on the date of the care.

A pack is a folder under `rules/packs/`: `pack.yaml` (document, validity, status) and `parameters/*.yaml`.
A parameter file holds nested nodes; a node with `values` is a parameter, named by its dotted path, e.g.
`billing.institutional_daily_rate.grade_5`. Each value is dated and carries its `reference` (document and
clause) and its `source` (`document` or `assumption`). A change of policy is a new dated entry, never an edit.

A pack's dates of effect are parameters too: `pack.valid_from` and `pack.valid_to` (`open` when the pack has no end),
from `pack.yaml` (`valid_from`, `valid_to`, `validity_reference`, and `validity_source`, `document` unless given). An
operator sets them like any other value, in the override file. Entries written on the pack's own date of effect (the
`valid_from` of `pack.yaml`) are the values the pack starts with: when an operator sets an earlier date of effect, they
are in force from that date (an area that already runs the scheme applies the pack's rules from the day it says).

This module imports neither Prefect nor the database: it is the part a policy expert reads.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from rules.errors import UserError

PACKS_DIR = Path(__file__).parent / "packs"
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
YEAR = re.compile(r"\d{4}")

MONEY_UNITS = {"yuan", "yuan/day", "yuan/month", "yuan/year", "yuan/assessment"}
SOURCES = ("document", "assumption", "operator")
VARIANT = "variant"
"""The source of a value in a variant pack (`rules.variants`): a proposal, never in force."""
OVERRIDES_ENV = "LTC_RULES_OVERRIDES"
VALID_FROM, VALID_TO = "pack.valid_from", "pack.valid_to"
DATES_OF_EFFECT = (VALID_FROM, VALID_TO)
OPEN = "open"


class RulesError(UserError):
    """A rule cannot be applied: a period outside a pack's validity, or a parameter with no value."""


@dataclass(frozen=True)
class DatedValue:
    start: dt.date
    value: Any
    reference: str
    source: str


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    unit: str
    values: tuple[DatedValue, ...]
    set_by: str | None = None

    def entry(self, on: dt.date) -> DatedValue:
        """The value in force on `on`: the latest entry that starts on or before it."""
        found: DatedValue | None = None
        for v in self.values:
            if v.start <= on:
                found = v
        if found is None or found.value is None:
            where = f"; it is set by {self.set_by}" if self.set_by else ""
            raise RulesError(
                f"parameter {self.name} has no value on {on.isoformat()}{where}. "
                f"Supply it in an override file ({OVERRIDES_ENV}/<pack>.yaml) that cites its source"
            )
        return found

    def at(self, on: dt.date) -> Any:
        return self.entry(on).value

    def decimal(self, on: dt.date) -> Decimal:
        return Decimal(str(self.at(on)))

    def fen(self, on: dt.date) -> int:
        """A money parameter in integer fen (values are written in yuan, as the documents write them)."""
        if self.unit not in MONEY_UNITS:
            raise RulesError(f"parameter {self.name} is in {self.unit}, not money")
        return int((self.decimal(on) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def cite(self, on: dt.date) -> dict[str, Any]:
        e = self.entry(on)
        return {
            "parameter": self.name,
            "value": str(e.value),
            "unit": self.unit,
            "reference": e.reference,
            "source": e.source,
            "from": e.start.isoformat(),
        }


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    document: str
    valid_from: dt.date
    valid_to: dt.date | None
    draft: bool
    parameters: dict[str, Parameter] = field(repr=False)
    overrides: tuple[str, ...] = ()

    def param(self, name: str) -> Parameter:
        try:
            return self.parameters[name]
        except KeyError:
            raise RulesError(f"pack {self.id} has no parameter {name}") from None

    def children(self, node: str) -> dict[str, str]:
        """The parameters directly under a node, by their last name: `billing.rate` -> {"grade_5": ...}."""
        prefix = node + "."
        return {n[len(prefix) :]: n for n in self.parameters if n.startswith(prefix) and "." not in n[len(prefix) :]}

    def check_date(self, on: dt.date) -> None:
        """Refuse a date outside the pack's validity, naming the pack and its dates."""
        end = self.valid_to.isoformat() if self.valid_to else "open"
        if on < self.valid_from or (self.valid_to is not None and on > self.valid_to):
            raise RulesError(
                f"{on.isoformat()} is outside pack {self.id} ({self.document}), "
                f"in force {self.valid_from.isoformat()}..{end}"
            )

    def check_period(self, period: str) -> None:
        first, last = period_bounds(period)
        self.check_date(first)
        self.check_date(last)

    def assumptions(self) -> list[str]:
        return sorted(n for n, p in self.parameters.items() if any(v.source == "assumption" for v in p.values))

    def operator_values(self) -> list[str]:
        return sorted(n for n, p in self.parameters.items() if any(v.source == "operator" for v in p.values))

    @property
    def status(self) -> str:
        """How outputs name the policy: its document, and that it is a draft where it is one."""
        return f"{self.document}（征求意见稿，未正式施行）" if self.draft else self.document

    def series(self, names: dict[str, str], value_name: str = "value") -> pl.DataFrame:
        """A frame of (key, effective_from, value) for parameters named in `names` (key -> parameter),
        money in fen: the form a vectorised rule joins on the care date (`join_asof`)."""
        rows = []
        for key, pname in names.items():
            p = self.param(pname)
            for v in p.values:
                value = (
                    int((Decimal(str(v.value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
                    if p.unit in MONEY_UNITS
                    else v.value
                )
                rows.append({"key": key, "effective_from": v.start, value_name: value})
        return pl.DataFrame(rows).sort("effective_from")


def period_start(period: str, pack: Pack | None = None) -> dt.date:
    """The date a period's rules are resolved on: the first day of a `YYYY-MM` month or a `YYYY` year, but not
    before the pack starts (a yearly pack that starts mid-year resolves its first year on its first day)."""
    try:
        if not (MONTH.fullmatch(period) or YEAR.fullmatch(period)):
            raise ValueError(period)
        first = dt.date.fromisoformat(f"{period}-01" if len(period) == 7 else f"{period}-01-01")
    except (ValueError, TypeError):
        raise RulesError(f"period {period!r} is neither YYYY-MM nor YYYY") from None
    return max(first, pack.valid_from) if pack else first


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a period written `YYYY-MM`."""
    try:
        if not MONTH.fullmatch(period):
            raise ValueError(period)
        year, month = (int(x) for x in period.split("-"))
        first = dt.date(year, month, 1)
    except (ValueError, TypeError):
        raise RulesError(f"period {period!r} is not of the form YYYY-MM") from None
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def _as_date(x: Any) -> dt.date:
    if isinstance(x, dt.date):
        return x
    return dt.date.fromisoformat(str(x))


def _walk(
    node: dict[str, Any],
    prefix: str,
    out: dict[str, Parameter],
    where: Path,
    context: str = "",
    sources: tuple[str, ...] = SOURCES,
) -> None:
    """Collect the parameters of a node; a leaf's description is prefixed by its parent node's. Each value's
    source must be one of `sources`."""
    own = str(node.get("description", "")).strip()
    if "values" in node:
        values = []
        for start, entry in sorted(node["values"].items(), key=lambda kv: _as_date(kv[0])):
            if not isinstance(entry, dict) or "reference" not in entry or "source" not in entry:
                raise RulesError(f"{where}: {prefix} value of {start} needs reference and source")
            if entry["source"] not in sources:
                raise RulesError(f"{where}: {prefix} source must be one of {', '.join(sources)}")
            values.append(DatedValue(_as_date(start), entry.get("value"), entry["reference"], entry["source"]))
        description = f"{context}（{own}）" if context and own else context or own
        out[prefix] = Parameter(prefix, description, node.get("unit", ""), tuple(values), node.get("set_by"))
        return
    for key, child in node.items():
        if key in ("description", "set_by"):
            continue
        _walk(child, f"{prefix}.{key}" if prefix else key, out, where, own if "." in prefix else "", sources)


def overrides_dir() -> Path | None:
    """Where operators keep values a document leaves to them: `LTC_RULES_OVERRIDES`, else `$LTC_HOME/overrides`."""
    given = os.environ.get(OVERRIDES_ENV)
    if given:
        return Path(given)
    home = os.environ.get("LTC_HOME")
    return Path(home) / "overrides" if home else Path.cwd() / ".ltc" / "overrides"


def load_pack(pack_id: str) -> Pack:
    """The pack with any operator overrides from `overrides_dir()/<pack_id>.yaml` applied."""
    folder = overrides_dir()
    override = folder / f"{pack_id}.yaml" if folder else None
    return _load_pack(pack_id, str(override) if override and override.exists() else None)


def pack_with(pack_id: str, values: dict[str, Any], where: str) -> Pack:
    """The pack with the operator's values in `values` (the format of an override file) applied; `where` names
    their source in errors and in `Pack.overrides`."""
    return _build_pack(pack_id, values, where)


@functools.cache
def _load_pack(pack_id: str, override: str | None) -> Pack:
    data = (yaml.safe_load(Path(override).read_text(encoding="utf-8")) or {}) if override else {}
    return _build_pack(pack_id, data, override)


def _build_pack(pack_id: str, overrides: dict[str, Any], where: str | None) -> Pack:
    folder = PACKS_DIR / pack_id
    meta_file = folder / "pack.yaml"
    if not meta_file.exists():
        raise RulesError(f"no policy pack {pack_id!r}; known packs: {', '.join(pack_ids())}")
    meta = yaml.safe_load(meta_file.read_text(encoding="utf-8"))
    params: dict[str, Parameter] = {}
    for f in sorted((folder / "parameters").glob("*.yaml")):
        _walk(yaml.safe_load(f.read_text(encoding="utf-8")), f.stem, params, f)
    written_from = _as_date(meta["valid_from"])
    params.update(_dates_of_effect(meta, written_from))
    if overrides:
        params = _apply_override(params, written_from, overrides, Path(where or "overrides"))
    start, end = params[VALID_FROM].values[0].value, params[VALID_TO].values[0].value
    if end != OPEN and end < start:
        raise RulesError(f"pack {pack_id}: {VALID_TO} {end} is before {VALID_FROM} {start}")
    return Pack(
        id=pack_id,
        name=meta["name"],
        document=meta["document"],
        valid_from=start,
        valid_to=None if end == OPEN else end,
        draft=bool(meta.get("draft", False)),
        parameters=params,
        overrides=(where,) if where else (),
    )


def _dates_of_effect(meta: dict[str, Any], start: dt.date) -> dict[str, Parameter]:
    """`pack.valid_from` and `pack.valid_to` from `pack.yaml`, each one entry dated on the date of effect."""
    reference = " ".join(str(meta.get("validity_reference") or meta["document"]).split())
    source = str(meta.get("validity_source", "document"))
    if source not in SOURCES:
        raise RulesError(f"{meta['name']}: validity_source must be one of {', '.join(SOURCES)}")
    end = _as_date(meta["valid_to"]) if meta.get("valid_to") else OPEN
    return {
        VALID_FROM: Parameter(VALID_FROM, DATE_OF_EFFECT_TEXT, "date", (DatedValue(start, start, reference, source),)),
        VALID_TO: Parameter(VALID_TO, END_OF_EFFECT_TEXT, "date", (DatedValue(start, end, reference, source),)),
    }


DATE_OF_EFFECT_TEXT = "施行日期 (the first day the pack's rules apply; an operator may set it)"
END_OF_EFFECT_TEXT = "有效期至 (the last day the pack's rules apply; open: no end date; an operator may set it)"


def _date_of_effect(p: Parameter, where: Path) -> Any:
    """The one value an override gives a date of effect: a date, or `open` (also empty) for `pack.valid_to`."""
    value = p.values[-1].value
    if value in (None, OPEN) and p.name == VALID_TO:
        return OPEN
    try:
        return _as_date(value)
    except ValueError:
        raise RulesError(f"{where}: {p.name} must be a date{' or open' if p.name == VALID_TO else ''}") from None


def _apply_override(
    params: dict[str, Parameter],
    written_from: dt.date,
    data: dict[str, Any],
    where: Path,
    sources: tuple[str, ...] = SOURCES,
) -> dict[str, Parameter]:
    """An override maps parameter names to dated values, as in a pack; its entries win on their dates.

    A date of effect (`pack.valid_from`, `pack.valid_to`) has one value: the override's (its last entry) replaces
    the pack's. When it moves the start before the pack's own date of effect, the pack's entries written on that date
    are in force from the new start."""
    given: dict[str, Parameter] = {}
    for name, node in data.items():
        if name not in params:
            raise RulesError(f"{where}: pack has no parameter {name} to override")
        found: dict[str, Parameter] = {}
        _walk(node, name, found, where, sources=sources)
        given[name] = found[name]
    start = _date_of_effect(given[VALID_FROM], where) if VALID_FROM in given else written_from
    out: dict[str, Parameter] = {}
    for name, p in params.items():
        if start < written_from:
            p = Parameter(
                name,
                p.description,
                p.unit,
                tuple(
                    DatedValue(start, v.value, v.reference, v.source) if v.start == written_from else v
                    for v in p.values
                ),
                p.set_by,
            )
        out[name] = p
    for name in DATES_OF_EFFECT:
        p = out[name]
        e = given[name].values[-1] if name in given else p.values[0]
        value = _date_of_effect(given[name], where) if name in given else e.value
        out[name] = Parameter(name, p.description, p.unit, (DatedValue(start, value, e.reference, e.source),), p.set_by)
    for name, new in given.items():
        if name in DATES_OF_EFFECT:
            continue
        old = out[name]
        dates = {v.start for v in new.values}
        merged = tuple(
            sorted([v for v in old.values if v.start not in dates] + list(new.values), key=lambda v: v.start)
        )
        out[name] = Parameter(name, old.description, old.unit, merged, old.set_by)
    return out


def pack_ids() -> list[str]:
    return sorted(p.name for p in PACKS_DIR.iterdir() if (p / "pack.yaml").exists())


def half_up(numerator: int, denominator: int) -> int:
    """Integer division rounded half-up, for non-negative amounts in fen."""
    return (2 * numerator + denominator) // (2 * denominator)


def with_params(frame: pl.DataFrame, pack: Pack, columns: dict[str, str], on: str) -> pl.DataFrame:
    """Add a column per parameter, each resolved on the row's own date column `on` (money in fen)."""
    dates = frame.select(pl.col(on).unique()).to_series().to_list()
    data: dict[str, list[Any]] = {on: dates}
    dtypes: dict[str, Any] = {on: pl.Date}
    for col, name in columns.items():
        p = pack.param(name)
        data[col] = [p.fen(d) if p.unit in MONEY_UNITS else p.at(d) for d in dates]
        if p.unit in MONEY_UNITS:
            dtypes[col] = pl.Int64
    values = pl.DataFrame(data, schema_overrides=dtypes)
    return frame.join(values, on=on, how="left")


def reasons(pack: Pack) -> dict[str, dict[str, str]]:
    """The pack's catalogue of refusal and exclusion reasons: code -> clause and plain-language text."""
    return _reasons(pack.id)


@functools.cache
def _reasons(pack_id: str) -> dict[str, dict[str, str]]:
    f = PACKS_DIR / pack_id / "reasons.yaml"
    data: dict[str, dict[str, str]] = yaml.safe_load(f.read_text(encoding="utf-8"))
    return data
