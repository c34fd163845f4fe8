"""The what-if report: one self-contained HTML page (jinja2, charts as inline SVG, no script and nothing fetched) on
what a proposal's changes to a pack would have cost on the record, and what the fund's balance would become under
each scenario; and one CSV file per table (plain UTF-8, a header row, money in fen).

The page shows counts of persons only; `persons.csv` holds their insurance numbers (never ID numbers)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from common.charts import bars, lines
from common.formatting import yuan

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "reports"
TEMPLATE = "whatif.html.j2"
SCENARIOS = ("in_force", "variant")
COLOURS = {"in_force": "#2b7bba", "variant": "#d95f02"}
NAMES = {"in_force": "现行政策 (in force)", "variant": "测算方案 (variant)"}
CHANGES = {
    "gain": "新获得待遇 (gain benefits)",
    "lose": "失去待遇 (lose benefits)",
    "more": "待遇增加 (paid more)",
    "less": "待遇减少 (paid less)",
    "eligibility_gain": "新符合待遇条件 (become eligible)",
    "eligibility_lose": "不再符合待遇条件 (no longer eligible)",
    "eligibility_changed": "待遇条件改变 (eligibility changed: grade or start)",
}
SOURCES = {
    "document": "文件规定 (document)",
    "assumption": "假设 (assumption)",
    "operator": "经办机构设定 (operator)",
    "variant": "测算方案 (variant)",
}


def _frame(result: dict[str, Any], name: str) -> pl.DataFrame:
    frame = result.get(name)
    return frame if isinstance(frame, pl.DataFrame) else pl.DataFrame()


PROJECTION_KEYS = ("insured", "beneficiaries", "contributions_fen", "benefits_fen", "balance_fen")
COLUMNS = {
    "changed": ("parameter", "description", "unit", "from", "in_force", "variant", "reference", "in_force_reference"),
    "persons_by_change": ("change", "label", "persons", "in_force_fen", "variant_fen", "diff_fen"),
    "by_mode_grade": ("care_mode", "grade", "in_force_fen", "variant_fen", "diff_fen"),
    "projection": ("scenario", "year", *PROJECTION_KEYS),
    "assumptions": ("name", "description", "value", "source", "from", "reference"),
    "sensitivity": (
        "assumption",
        "description",
        "shift",
        "value",
        "year",
        "in_force_balance_fen",
        "in_force_run_out_year",
        "variant_balance_fen",
        "variant_run_out_year",
    ),
}
"""The tables built here, written as `<name>.csv` with these columns."""
FRAMES = ("months", "by_mode_grade", "years", "contributions", "persons", "eligibility", "lines", "record")
"""The result's own frames, written as `<name>.csv` as they are (`persons.csv` holds the insurance numbers); a table
built here of the same name (by care mode and grade, summed over the months, for the page) is not written."""


def _by_change(persons: pl.DataFrame) -> list[dict[str, Any]]:
    out = []
    for change, label in CHANGES.items():
        rows = persons.filter(pl.col("change") == change) if persons.height else None
        sums = {k: int(rows[k].sum()) if rows is not None else 0 for k in ("in_force_fen", "variant_fen", "diff_fen")}
        out.append({"change": change, "label": label, "persons": rows.height if rows is not None else 0, **sums})
    return out


def _by_mode_grade(frame: pl.DataFrame) -> list[dict[str, Any]]:
    if not frame.height:
        return []
    return (
        frame.group_by("care_mode", "grade")
        .agg(pl.col("in_force_fen").sum(), pl.col("variant_fen").sum(), pl.col("diff_fen").sum())
        .sort("care_mode", "grade", nulls_last=True)
        .to_dicts()
    )


def _sensitivity(projection: dict[str, Any]) -> list[dict[str, Any]]:
    """Both scenarios' sensitivity rows side by side, matched on the assumption and its shift."""
    variant = {(r["assumption"], r["shift"]): r for r in projection["sensitivity"]["variant"]}
    out = []
    for r in projection["sensitivity"]["in_force"]:
        other = variant.get((r["assumption"], r["shift"]), {})
        out.append(
            {
                **{k: r[k] for k in ("assumption", "description", "shift", "value", "year")},
                "in_force_balance_fen": r["balance_fen"],
                "in_force_run_out_year": r["run_out_year"],
                "variant_balance_fen": other.get("balance_fen"),
                "variant_run_out_year": other.get("run_out_year"),
            }
        )
    return out


def tables(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The report's tables, each a list of rows (money in fen): what the page shows and the CSV files hold."""
    projection = result["projection"]
    by_year = {sc: {r["year"]: r for r in projection[sc]} for sc in SCENARIOS}
    years = sorted(set(by_year["in_force"]) | set(by_year["variant"]))
    months, per_year = _frame(result, "months"), _frame(result, "years")
    return {
        "changed": [dict(c) for c in result["changed"]],
        "years": per_year.sort("year").to_dicts() if per_year.height else [],
        "months": months.sort("period").to_dicts() if months.height else [],
        "by_mode_grade": _by_mode_grade(_frame(result, "by_mode_grade")),
        "contributions": _frame(result, "contributions").to_dicts(),
        "persons_by_change": _by_change(_frame(result, "persons")),
        "projection": [{"scenario": sc, **row} for sc in SCENARIOS for row in projection[sc]],
        "projection_by_year": [
            {"year": y, **{f"{sc}_{k}": by_year[sc].get(y, {}).get(k) for sc in SCENARIOS for k in PROJECTION_KEYS}}
            for y in years
        ],
        "assumptions": [dict(a) for a in projection["assumptions"]],
        "sensitivity": _sensitivity(projection),
    }


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["yuan"] = lambda fen: "–" if fen is None else yuan(int(fen), grouping=True)
    return env


def render_report(result: dict[str, Any]) -> str:
    t = tables(result)
    projection = result["projection"]
    months = t["months"]
    labels = [m["period"] for m in months]
    years = [str(r["year"]) for r in t["projection_by_year"]]
    charts = {
        "benefits": bars({sc: [int(m[f"{sc}_fen"] or 0) for m in months] for sc in SCENARIOS}, labels, COLOURS, NAMES),
        "projection": lines(
            {sc: [int(r[f"{sc}_balance_fen"] or 0) for r in t["projection_by_year"]] for sc in SCENARIOS},
            years,
            COLOURS,
            NAMES,
        ),
    }
    totals = {key: sum(int(r[key] or 0) for r in t["years"]) for key in ("in_force_fen", "variant_fen", "diff_fen")}
    run_out = {sc: projection[f"{sc}_run_out"] for sc in SCENARIOS}
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            r=result,
            t=t,
            charts=charts,
            totals=totals,
            run_out=run_out,
            horizon=len(t["projection_by_year"]),
            proposal_file=Path(str(result["proposal"].get("file") or "")).name,
            scenarios=SCENARIOS,
            names=NAMES,
            colours=COLOURS,
            sources=SOURCES,
        )
    )


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_report(result: dict[str, Any], out_dir: Path) -> Path:
    """`out_dir/report.html` and one CSV file per table (plain UTF-8, a header row); the HTML file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    t = tables(result)
    for name, columns in COLUMNS.items():
        if name not in FRAMES:
            _write_csv(out_dir / f"{name}.csv", columns, t[name])
    for name in FRAMES:
        _frame(result, name).write_csv(out_dir / f"{name}.csv")
    page = out_dir / "report.html"
    page.write_text(render_report(result), encoding="utf-8")
    return page
