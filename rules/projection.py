"""The fund projection: a scenario's last year carried forward under stated assumptions, year by year.

The assumptions are dated, cited parameters in `rules/projection.yaml`, in the format of the packs (read by
`rules.engine._walk`, so they are checked the same way). No policy document fixes any of them: each is an assumption,
and an operator may set any of them with a dated value whose source is `operator`, in the format of an override file:
`{name: {values: {date: {value, reference, source: operator}}}}`. A name may be a group (`beneficiary_growth`): its
value then applies to every grade.

Each projected year y (the first is the baseline's year + 1):

    insured_y            = insured_{y-1} × (1 + insured_growth)
    contributions_y      = contributions_{y-1} × (1 + insured_growth) × (1 + wage_growth)
    beneficiaries_{y,g}  = beneficiaries_{y-1,g} × (1 + beneficiary_growth_g − mortality)
    per_beneficiary_{y,g} = per_beneficiary_{y-1,g} × (1 + price_growth)
    benefits_y           = Σ_g beneficiaries_{y,g} × per_beneficiary_{y,g}
    balance_y            = balance_{y-1} + contributions_y − benefits_y

Quantities are carried exactly (Decimal); each year's amounts are rounded half-up to the fen, benefits per grade, and
the balance carries the rounded amounts. Persons are shown rounded half-up. Interest and public subsidies are not
counted. This module imports neither Prefect nor the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from rules.engine import Parameter, RulesError, _walk

ASSUMPTIONS_FILE = Path(__file__).parent / "projection.yaml"
ROOT = "projection"
"""The prefix the file's parameters are walked under (so that a group's description prefixes its members')."""

INSURED_GROWTH = "insured_growth"
BENEFICIARY_GROWTH = "beneficiary_growth"
MORTALITY = "mortality"
PRICE_GROWTH = "price_growth"
WAGE_GROWTH = "wage_growth"
OPERATOR = "operator"
SHIFT = Decimal("0.01")
"""The sensitivity analysis moves each assumption by one point down and up (absolute)."""
CENTRAL = "central"

ROW_KEYS = ("year", "insured", "beneficiaries", "contributions_fen", "benefits_fen", "balance_fen")


@dataclass(frozen=True)
class Assumption:
    name: str
    description: str
    value: Decimal
    reference: str
    source: str
    start: dt.date

    @property
    def group(self) -> str:
        """The assumption a sensitivity analysis moves: `beneficiary_growth` for each `beneficiary_growth.grade_N`."""
        return self.name.split(".")[0]

    def cite(self) -> dict[str, str]:
        return {
            "name": self.name,
            "description": self.description,
            "value": str(self.value),
            "reference": self.reference,
            "source": self.source,
            "from": self.start.isoformat(),
        }


@dataclass(frozen=True)
class Baseline:
    """One scenario's last twelve months, made a year, at the last closed period."""

    year: int
    """The first projected year is `year + 1`."""
    insured: int
    contributions_fen: int
    """A year's contributions."""
    beneficiaries: dict[int, int]
    """Grade -> persons."""
    benefit_per_beneficiary_fen: dict[int, int]
    """Grade -> a year's benefits per person."""
    balance_fen: int
    """The fund's balance at the end of the last closed period."""


def grade_name(grade: int) -> str:
    return f"{BENEFICIARY_GROWTH}.grade_{grade}"


@functools.cache
def _file() -> tuple[dict[str, Parameter], dict[str, str]]:
    data = yaml.safe_load(ASSUMPTIONS_FILE.read_text(encoding="utf-8"))
    found: dict[str, Parameter] = {}
    _walk(data, ROOT, found, ASSUMPTIONS_FILE)
    params = {name[len(ROOT) + 1 :]: dataclasses.replace(p, name=name[len(ROOT) + 1 :]) for name, p in found.items()}
    groups = {key: str(node.get("description", key)).strip() for key, node in data.items() if isinstance(node, dict)}
    return params, groups


def group_descriptions() -> dict[str, str]:
    """Each top-level assumption's description (for a group, the group's own, not a member's)."""
    return dict(_file()[1])


def _members(params: dict[str, Parameter], name: str) -> list[str]:
    if name in params:
        return [name]
    return [n for n in params if n.startswith(name + ".")]


def _merge(old: Parameter, new: Parameter) -> Parameter:
    """The override's entries win on their dates, as in a pack's override file."""
    dates = {v.start for v in new.values}
    merged = sorted([v for v in old.values if v.start not in dates] + list(new.values), key=lambda v: v.start)
    return dataclasses.replace(old, values=tuple(merged))


def _ratio(p: Parameter, on: dt.date) -> Assumption:
    e = p.entry(on)
    value = e.value
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise RulesError(f"assumption {p.name} on {on.isoformat()} must be a number, not {value!r}")
    try:
        ratio = Decimal(str(value))
    except InvalidOperation:
        raise RulesError(f"assumption {p.name} on {on.isoformat()} must be a number, not {value!r}") from None
    if not ratio.is_finite() or not Decimal(-1) < ratio < Decimal(1):
        raise RulesError(f"assumption {p.name} on {on.isoformat()} is {value}: a yearly ratio lies between -1 and 1")
    if p.name == MORTALITY and ratio < 0:
        raise RulesError(f"assumption {p.name} on {on.isoformat()} is {value}: a share of persons is not negative")
    return Assumption(p.name, p.description, ratio, " ".join(e.reference.split()), e.source, e.start)


def load_assumptions(
    overrides: dict[str, Any] | None, on: dt.date, where: str = "projection overrides"
) -> dict[str, Assumption]:
    """The assumptions in force on `on`, with the operator's dated values in `overrides` (the format of an override
    file; each value's source `operator`) applied; `where` names the overrides in errors."""
    base, _ = _file()
    params = dict(base)
    origin = Path(where)
    for name, node in (overrides or {}).items():
        if not isinstance(node, dict):
            raise RulesError(f"{where}: assumption {name} must map to dated values")
        if not _members(params, str(name)):
            raise RulesError(f"{where}: no assumption {name}; known: {', '.join(params)}")
        given: dict[str, Parameter] = {}
        try:
            _walk(node, str(name), given, origin)
        except (AttributeError, TypeError, ValueError):
            raise RulesError(f"{where}: assumption {name} must map to dated values, each with its date") from None
        for gname, new in given.items():
            members = _members(params, gname)
            if not members:
                raise RulesError(f"{where}: no assumption {gname}; known: {', '.join(params)}")
            for v in new.values:
                if v.source != OPERATOR:
                    raise RulesError(f"{where}: {gname} value of {v.start.isoformat()} must have source {OPERATOR}")
            for member in members:
                params[member] = _merge(params[member], new)
    return {name: _ratio(p, on) for name, p in params.items()}


def _rate(assumptions: dict[str, Assumption], name: str) -> Decimal:
    try:
        return assumptions[name].value
    except KeyError:
        raise RulesError(f"the projection needs assumption {name}; it is not given") from None


def _whole(x: Decimal) -> int:
    """Half-up to a whole number (fen or persons)."""
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def project(base: Baseline, assumptions: dict[str, Assumption], years: int) -> list[dict[str, int]]:
    """One row per projected year: year, insured, beneficiaries, contributions_fen, benefits_fen, balance_fen (the
    closing balance: the previous one + contributions − benefits)."""
    if years < 0:
        raise ValueError(f"years must not be negative, got {years}")
    missing = sorted(set(base.beneficiaries) - set(base.benefit_per_beneficiary_fen))
    if missing:
        raise ValueError(f"the baseline has beneficiaries but no benefit per beneficiary in grades {missing}")
    insured_growth = _rate(assumptions, INSURED_GROWTH)
    wage_growth = _rate(assumptions, WAGE_GROWTH)
    price_growth = _rate(assumptions, PRICE_GROWTH)
    mortality = _rate(assumptions, MORTALITY)
    grades = sorted(base.beneficiaries)
    net = {g: max(Decimal(0), 1 + _rate(assumptions, grade_name(g)) - mortality) for g in grades}
    insured = Decimal(base.insured)
    contributions = Decimal(base.contributions_fen)
    persons = {g: Decimal(base.beneficiaries[g]) for g in grades}
    per_person = {g: Decimal(base.benefit_per_beneficiary_fen[g]) for g in grades}
    balance = base.balance_fen
    rows: list[dict[str, int]] = []
    for i in range(1, years + 1):
        insured *= 1 + insured_growth
        contributions *= (1 + insured_growth) * (1 + wage_growth)
        for g in grades:
            persons[g] *= net[g]
            per_person[g] *= 1 + price_growth
        contributions_fen = _whole(contributions)
        benefits_fen = sum(_whole(persons[g] * per_person[g]) for g in grades)
        balance += contributions_fen - benefits_fen
        rows.append(
            {
                "year": base.year + i,
                "insured": _whole(insured),
                "beneficiaries": sum(_whole(persons[g]) for g in grades),
                "contributions_fen": contributions_fen,
                "benefits_fen": benefits_fen,
                "balance_fen": balance,
            }
        )
    return rows


def run_out_year(rows: list[dict[str, int]]) -> int | None:
    """The first year whose closing balance is negative; None when the reserve lasts the whole projection."""
    for row in rows:
        if row["balance_fen"] < 0:
            return row["year"]
    return None


def _shifted(assumptions: dict[str, Assumption], group: str, shift: Decimal) -> dict[str, Assumption]:
    return {
        name: dataclasses.replace(a, value=a.value + shift) if a.group == group else a
        for name, a in assumptions.items()
    }


def _value_text(assumptions: dict[str, Assumption], group: str, grades: list[int]) -> str:
    """The group's value: one number when its members agree, else each member's."""
    members = [a for a in assumptions.values() if a.group == group]
    if group == BENEFICIARY_GROWTH and grades:
        members = [a for a in members if a.name in {grade_name(g) for g in grades}] or members
    values = {str(a.value) for a in members}
    if len(values) == 1:
        return values.pop()
    return ", ".join(f"{a.name.split('.')[-1]} {a.value}" for a in members)


def sensitivity(base: Baseline, assumptions: dict[str, Assumption], years: int) -> list[dict[str, Any]]:
    """The central case, then each assumption (the grades' beneficiary growth together, as one) one point down and
    one point up: the final year's closing balance and the year the reserve runs out (None: not within `years`)."""
    descriptions = group_descriptions()
    grades = sorted(base.beneficiaries)

    def row(group: str, shift: str, moved: dict[str, Assumption], description: str) -> dict[str, Any]:
        rows = project(base, moved, years)
        return {
            "assumption": group,
            "description": description,
            "shift": shift,
            "value": "" if group == CENTRAL else _value_text(moved, group, grades),
            "year": rows[-1]["year"] if rows else base.year,
            "balance_fen": rows[-1]["balance_fen"] if rows else base.balance_fen,
            "run_out_year": run_out_year(rows),
        }

    out = [row(CENTRAL, "0", assumptions, "中心情形 (central case)")]
    for group in dict.fromkeys(a.group for a in assumptions.values()):
        description = descriptions.get(group, group)
        for sign, shift in (("-", -SHIFT), ("+", SHIFT)):
            out.append(row(group, f"{sign}{SHIFT}", _shifted(assumptions, group, shift), description))
    return out
