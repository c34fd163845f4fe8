"""Documentation generated from the code, so the two cannot drift: `ltc docs` rewrites `docs/`."""

from __future__ import annotations

from pathlib import Path

from tasks.schemas import INBOUND

DOCS = Path(__file__).resolve().parent.parent / "docs"
READERS = {
    "text": "text",
    "date": "date, YYYY-MM-DD",
    "money": "yuan, at most 2 decimals (stored as integer fen)",
    "int": "whole number",
    "bool": "true/false (also 1/0, yes/no, 是/否)",
}


def formats_markdown() -> str:
    out = [
        "# Inbound file formats",
        "",
        "Generated from `tasks/schemas.py` by `ltc docs`; do not edit by hand.",
        "",
        "Every file is UTF-8 CSV with a header line. `ltc load KIND FILE` loads it: rows that fail a check are",
        "kept in quarantine and reported as `file:line: field: reason`; the others are stored. Loading the",
        "same file again changes nothing.",
        "",
    ]
    for spec in INBOUND.values():
        schema = spec.model.to_schema()
        out += [f"## `{spec.kind}`", "", spec.description, "", f"Natural key: {', '.join(spec.key)}.", ""]
        out += ["| column | required | format | checks | meaning |", "|---|---|---|---|---|"]
        for c in spec.columns:
            col = schema.columns[c.field]
            checks = ", ".join(f"`{ch.error or ch.name}`" for ch in col.checks)
            if col.nullable:
                checks = (checks + ", may be empty").lstrip(", ")
            required = "yes" if c.required else f"no (default {c.default!r})" if c.default is not None else "no"
            out.append(
                f"| `{c.header}` | {required} | {READERS[c.reader]} | {checks.replace('|', '/')} | "
                f"{col.description or ''} |"
            )
        row_checks = [str(ch.error or ch.name) for ch in schema.checks]
        refs = [f"`{f}` must name a known {t}" for f, t in spec.references]
        if row_checks or refs:
            out += ["", "Row checks: " + "; ".join(row_checks + refs) + "."]
        out.append("")
    return "\n".join(out)


def write_docs() -> list[Path]:
    DOCS.mkdir(exist_ok=True)
    path = DOCS / "formats.md"
    path.write_text(formats_markdown(), encoding="utf-8")
    return [path]
