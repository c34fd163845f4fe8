"""Variant packs: a proposal's changes to a pack's parameters, to ask the record what they would cost.

A variant file names the pack, describes the proposal and gives the parameters that change, from when, in the
format of the packs and of operator overrides, each value with `source: variant` and its `reference` (the proposal,
with the clause it would amend):

    jurisdiction: nanning
    title: 机构护理重度失能Ⅰ级日标准提高至60元
    description: >-
      ...
    parameters:
      billing.institutional_daily_rate.grade_3:
        values:
          2026-01-01: {value: 60, reference: 测算方案 拟修订 南府规〔2023〕26号 三(三)3(2), source: variant}
    projection:            # optional: the projection's assumptions the operator sets (source: operator)
      wage_growth:
        values:
          2026-01-01: {value: 0.03, reference: 人社局 2025年社平工资增幅, source: operator}

The variant is the pack in force (with the operator's overrides) and the proposal's entries on their dates; the
pack's files, its overrides and the record are never changed. A variant with no parameters is the pack in force.
This module imports neither Prefect nor the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rules.engine import (
    DATES_OF_EFFECT,
    MONEY_UNITS,
    VARIANT,
    Pack,
    RulesError,
    _apply_override,
    load_pack,
)


@dataclass(frozen=True)
class Change:
    """One dated value a variant gives a parameter, beside the value in force on that date."""

    parameter: str
    description: str
    unit: str
    start: dt.date
    in_force: Any
    variant: Any
    reference: str
    in_force_reference: str


@dataclass(frozen=True)
class Variant:
    jurisdiction: str
    title: str
    description: str
    file: str
    digest: str
    in_force: Pack = field(repr=False)
    pack: Pack = field(repr=False)
    changes: tuple[Change, ...]
    projection: dict[str, Any]


KEYS = {"jurisdiction", "title", "description", "parameters", "projection"}


def load_variant(path: Path, jurisdiction: str | None = None) -> Variant:
    """The variant in `path` against the pack in force. `jurisdiction`, when given, must be the file's own."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError(f"{path}: cannot read the variant file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise RulesError(f"{path}: not a YAML file ({str(e).splitlines()[0]})") from None
    return variant_of(data, str(path), hashlib.sha256(text.encode("utf-8")).hexdigest(), jurisdiction)


def variant_of(data: Any, where: str, digest: str, jurisdiction: str | None = None) -> Variant:
    if not isinstance(data, dict):
        raise RulesError(f"{where}: a variant is a mapping with jurisdiction, title, description and parameters")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {', '.join(unknown)}; a variant has {', '.join(sorted(KEYS))}")
    for key in ("jurisdiction", "title", "description"):
        if not str(data.get(key) or "").strip():
            raise RulesError(f"{where}: the variant needs its {key}")
    own = str(data["jurisdiction"])
    if jurisdiction is not None and jurisdiction != own:
        raise RulesError(f"{where}: the variant is for {own}, not {jurisdiction}")
    in_force = load_pack(own)
    given = data.get("parameters") or {}
    if not isinstance(given, dict):
        raise RulesError(f"{where}: parameters must map parameter names to dated values")
    for name in given:
        if name in DATES_OF_EFFECT:
            raise RulesError(f"{where}: a variant changes rules, not the pack's date of effect ({name})")
    params = _apply_override(in_force.parameters, in_force.valid_from, given, Path(where), sources=(VARIANT,))
    pack = Pack(
        id=in_force.id,
        name=in_force.name,
        document=in_force.document,
        valid_from=in_force.valid_from,
        valid_to=in_force.valid_to,
        draft=in_force.draft,
        parameters=params,
        overrides=(*in_force.overrides, where),
    )
    changes = []
    for name in sorted(given):
        for v in params[name].values:
            if v.source != VARIANT:
                continue
            before = _in_force_entry(in_force, name, v.start)
            changes.append(
                Change(
                    parameter=name,
                    description=params[name].description,
                    unit=params[name].unit,
                    start=v.start,
                    in_force=None if before is None else before.value,
                    variant=v.value,
                    reference=v.reference,
                    in_force_reference="" if before is None else before.reference,
                )
            )
            _check_value(params[name].unit, v.value, name, where)
    projection = data.get("projection") or {}
    if not isinstance(projection, dict):
        raise RulesError(f"{where}: projection must map assumption names to dated values")
    return Variant(
        jurisdiction=own,
        title=str(data["title"]).strip(),
        description=" ".join(str(data["description"]).split()),
        file=where,
        digest=digest,
        in_force=in_force,
        pack=pack,
        changes=tuple(changes),
        projection=projection,
    )


def _in_force_entry(pack: Pack, name: str, on: dt.date) -> Any:
    found = None
    for v in pack.param(name).values:
        if v.start <= on:
            found = v
    return found


def _check_value(unit: str, value: Any, name: str, where: str) -> None:
    """A money or ratio value must be a non-negative number (a proposal's typo should not be costed)."""
    if unit not in MONEY_UNITS and unit != "ratio":
        return
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RulesError(f"{where}: {name} must be a non-negative number of {unit}, not {value!r}")
