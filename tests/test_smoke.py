"""Every deployment entrypoint imports and is a flow; every policy pack loads with cited parameters."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from rules.engine import load_pack, pack_ids

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]


@pytest.mark.parametrize("entry", [d["entrypoint"] for d in DEPLOYMENTS])
def test_entrypoint_imports_a_flow(entry: str) -> None:
    path, name = entry.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert isinstance(getattr(module, name), Flow)


def test_serve_lists_every_deployed_flow() -> None:
    from deployments.serve import FLOWS

    assert sorted(f.name for f in FLOWS) == sorted(d["name"] for d in DEPLOYMENTS)


@pytest.mark.parametrize("pack_id", pack_ids())
def test_pack_loads_and_every_value_cites_a_clause(pack_id: str) -> None:
    pack = load_pack(pack_id)
    assert pack.parameters
    for p in pack.parameters.values():
        for v in p.values:
            assert v.reference.strip() and v.source in ("document", "assumption"), p.name
