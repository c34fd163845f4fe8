"""The record on both backends: migrations match the models, natural keys make reruns idempotent."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage import models as m
from storage.db import alembic_config, session_scope, upsert


def test_migrations_match_the_models(backend: str) -> None:
    command.check(alembic_config())  # raises if the models have changes no migration holds


def test_a_payment_batch_exists_once_per_payee_and_period(backend: str) -> None:
    with session_scope() as s:
        s.add(
            m.Provider(
                provider_id="H1",
                name="n",
                jurisdiction="nanning",
                kind="institution",
                contract_start=dt.date(2024, 1, 1),
                status="active",
                bank_account="622200",
            )
        )
    batch = {
        "payee_id": "H1",
        "period": "2026-03",
        "jurisdiction": "nanning",
        "bank_account": "622200",
        "total_fen": 100,
        "line_count": 1,
    }
    with session_scope() as s:
        s.add(m.PaymentBatch(batch_ref="b1", **batch))
    with pytest.raises(IntegrityError), session_scope() as s:
        s.add(m.PaymentBatch(batch_ref="b2", **batch))
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.PaymentBatch)) == 1


def test_upsert_on_a_natural_key_updates_instead_of_duplicating(backend: str) -> None:
    row = {"agency_id": "AG1", "name": "a", "jurisdiction": "nanning", "area": "x", "capacity_per_day": 5}
    with session_scope() as s:
        upsert(s, m.Agency, [row], ["agency_id"])
    with session_scope() as s:
        upsert(s, m.Agency, [{**row, "capacity_per_day": 7}], ["agency_id"])
    with session_scope() as s:
        assert [a.capacity_per_day for a in s.scalars(select(m.Agency))] == [7]
