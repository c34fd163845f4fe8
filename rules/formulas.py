"""Dated formulas: a rule whose logic changes gets a new function from a new date, never a date branch.

A pack's `formulas.py` registers its functions with `@formula(pack, name, since)`; `resolve` picks the one in
force on a date. `since` is a date (`YYYY-MM-DD`), or `DATE_OF_EFFECT` for a first version in force from the pack's
date of effect (`pack.valid_from`), wherever the document or the operator sets it.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from typing import Any

from rules.engine import Pack, RulesError, load_pack

DATE_OF_EFFECT = "date of effect"

_REGISTRY: dict[tuple[str, str], list[tuple[dt.date | None, Callable[..., Any]]]] = {}


def formula(pack: str, name: str, since: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        versions = _REGISTRY.setdefault((pack, name), [])
        versions.append((None if since == DATE_OF_EFFECT else dt.date.fromisoformat(since), fn))
        versions.sort(key=lambda v: (v[0] is not None, v[0] or dt.date.min))
        return fn

    return register


def resolve(pack: Pack | str, name: str, on: dt.date) -> Callable[..., Any]:
    p = pack if isinstance(pack, Pack) else load_pack(pack)
    p.check_date(on)
    importlib.import_module(f"rules.packs.{p.id}.formulas")
    versions = _REGISTRY.get((p.id, name), [])
    chosen = [fn for since, fn in versions if (since or p.valid_from) <= on]
    if not chosen:
        raise RulesError(f"pack {p.id} has no formula {name} in force on {on.isoformat()}")
    return chosen[-1]
