"""The fund report (`ltc report fund`): one self-contained HTML page (jinja2, charts as inline SVG, no script and
nothing fetched) on a pooling area's fund up to a period: contributions in and benefits out by month, spending by
care mode and grade, beneficiaries over time, assessment and agency costs against the pack's ceiling, and the
months of benefits the fund's balance would cover."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import func, select

from common.charts import bars
from common.formatting import yuan
from rules.engine import RulesError, load_pack, period_bounds
from storage import models as m
from storage.db import session_scope

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "reports"
MONTHS_SHOWN = 12
COLOURS = {"in": "#2b7bba", "out": "#d95f02", "institutional": "#1b9e77", "home": "#7570b3", "community": "#e7298a"}
NAMES = {"in": "保费收入 (in)", "out": "待遇支出 (out)"}


def _months(period: str, n: int) -> list[str]:
    year, month = int(period[:4]), int(period[5:7])
    out = []
    for _ in range(n):
        out.append(f"{year}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def line(values: list[int], labels: list[str], width: int = 720, height: int = 180) -> str:
    top = max([*values, 1])
    left, bottom, head = 50, 30, 24
    step = (width - left - 20) / max(len(values) - 1, 1)
    points = [(left + i * step, height - bottom - (height - bottom - head) * v / top) for i, v in enumerate(values)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#999"/>')
    parts.append(
        '<polyline fill="none" stroke="#2b7bba" stroke-width="2" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        + '"/>'
    )
    for (x, y), v, label in zip(points, values, labels, strict=True):
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#2b7bba"><title>{label}: {v}</title></circle>'
        )
        parts.append(f'<text x="{x:.1f}" y="{y - 6:.1f}" font-size="10" text-anchor="middle">{v}</text>')
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{label[2:]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def fund_figures(jurisdiction: str, period: str, months: int = MONTHS_SHOWN) -> dict[str, Any]:
    """The figures of the report, from the record: fen by month, counts, the pack's ceiling."""
    labels = _months(period, months)
    cl, c = m.ClaimLine, m.Contribution
    with session_scope() as s:
        persons = select(m.Person.person_id).where(m.Person.jurisdiction == jurisdiction)
        contributions = dict(
            s.execute(select(c.period, func.sum(c.paid_fen)).where(c.person_id.in_(persons)).group_by(c.period))
            .tuples()
            .all()
        )
        benefits = dict(
            s.execute(
                select(cl.period, func.sum(cl.payable_fen)).where(cl.jurisdiction == jurisdiction).group_by(cl.period)
            )
            .tuples()
            .all()
        )
        adjustments = dict(
            s.execute(
                select(m.ClaimAdjustment.period, func.sum(m.ClaimAdjustment.delta_fen))
                .where(m.ClaimAdjustment.jurisdiction == jurisdiction)
                .group_by(m.ClaimAdjustment.period)
            )
            .tuples()
            .all()
        )
        beneficiaries = dict(
            s.execute(
                select(cl.period, func.count(cl.person_id.distinct()))
                .where(cl.jurisdiction == jurisdiction, cl.payable_fen > 0)
                .group_by(cl.period)
            )
            .tuples()
            .all()
        )
        by_mode_grade = s.execute(
            select(cl.care_mode, cl.grade, func.sum(cl.payable_fen), func.count(cl.person_id.distinct()))
            .where(cl.jurisdiction == jurisdiction, cl.period.in_(labels), cl.payable_fen > 0)
            .group_by(cl.care_mode, cl.grade)
            .order_by(cl.care_mode, cl.grade)
        ).all()
        by_mode_month = s.execute(
            select(cl.period, cl.care_mode, func.sum(cl.payable_fen))
            .where(cl.jurisdiction == jurisdiction, cl.period.in_(labels))
            .group_by(cl.period, cl.care_mode)
        ).all()
        fees = s.execute(
            select(m.Assessment.visited_on, m.Assessment.fee_fund_fen)
            .join(m.Application, m.Application.application_id == m.Assessment.application_id)
            .where(m.Application.person_id.in_(persons), m.Assessment.fee_fund_fen.is_not(None))
        ).all()
    fee_by_month: dict[str, int] = defaultdict(int)
    for visited, fen in fees:
        fee_by_month[f"{visited:%Y-%m}"] += int(fen or 0)

    def monthly(values: dict[str, Any], month: str) -> int:
        """A month's value; a yearly contribution (`YYYY`) is spread over its twelve months."""
        yearly = values.get(month[:4])
        return int(values.get(month) or 0) + (int(yearly) // 12 if yearly else 0)

    cin = [monthly(contributions, x) for x in labels]
    out = [int(benefits.get(x) or 0) + int(adjustments.get(x) or 0) for x in labels]
    fee = [fee_by_month.get(x, 0) for x in labels]
    up_to = lambda d: sum(int(v or 0) for k, v in d.items() if k[:7] <= period)  # noqa: E731
    balance = (
        up_to(contributions)
        - up_to(benefits)
        - up_to(adjustments)
        - sum(v for k, v in fee_by_month.items() if k <= period)
    )
    recent = [v for v in out[-3:] if v]
    reserve_months = balance / (sum(recent) / len(recent)) if recent and balance > 0 else None
    pack = load_pack(jurisdiction)
    ceiling = None
    for name in ("fund.agency_fee_ceiling_ratio", "fund.agency_fee_ratio"):
        try:
            value = pack.param(name).at(period_bounds(period)[0])
        except (KeyError, RulesError):
            continue
        if value is not None:
            ceiling = {"parameter": name, "ratio": value, "reference": pack.param(name).values[-1].reference}
            break
    year_in = sum(v for k, v in zip(labels, cin, strict=True) if k[:4] == period[:4])
    modes = sorted({mode for _, mode, _ in by_mode_month})
    per_mode = {mode: [0] * len(labels) for mode in modes}
    for month, mode, fen in by_mode_month:
        per_mode[mode][labels.index(month)] = int(fen or 0)
    return {
        "pack": pack,
        "jurisdiction": jurisdiction,
        "period": period,
        "labels": labels,
        "contributions_fen": cin,
        "benefits_fen": out,
        "fees_fen": fee,
        "beneficiaries": [int(beneficiaries.get(x) or 0) for x in labels],
        "by_mode_grade": [
            {"care_mode": mode, "grade": grade, "fen": int(fen or 0), "persons": n}
            for mode, grade, fen, n in by_mode_grade
        ],
        "by_mode_month": per_mode,
        "balance_fen": balance,
        "reserve_months": reserve_months,
        "ceiling": ceiling,
        "ceiling_fen": int(year_in * ceiling["ratio"]) if ceiling else None,
        "year_fees_fen": sum(v for k, v in zip(labels, fee, strict=True) if k[:4] == period[:4]),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_fund_report(jurisdiction: str, period: str) -> str:
    f = fund_figures(jurisdiction, period)
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["yuan"] = yuan
    charts = {
        "in_out": bars({"in": f["contributions_fen"], "out": f["benefits_fen"]}, f["labels"], COLOURS, NAMES),
        "by_mode": bars(f["by_mode_month"], f["labels"], COLOURS),
        "beneficiaries": line(f["beneficiaries"], f["labels"]),
        "fees": bars({"out": f["fees_fen"]}, f["labels"], COLOURS, {"out": "评估费 (assessment fees)"}, height=160),
    }
    return env.get_template("fund.html.j2").render(f=f, charts=charts)


def write_fund_report(jurisdiction: str, period: str, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_fund_report(jurisdiction, period), encoding="utf-8")
    return out
