"""Documentation generated from the code, so the two cannot drift: `ltc docs` rewrites `docs/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rules.engine import Pack, _load_pack, pack_ids
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


def _value(v: Any) -> str:
    if v is None:
        return "(no value)"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return str(v)


def policies_markdown() -> str:
    """Every parameter of every pack, with its dated values, clause and source; then the packs side by side."""
    packs = [_base_pack(pid) for pid in pack_ids()]
    out = [
        "# Policy packs",
        "",
        "Generated from `rules/packs/` by `ltc docs`; do not edit by hand. `source` is `document` where the",
        "document fixes the value, `assumption` where no document does (a stated default), and a value with no",
        "value names the document that must set it (an operator supplies it in an override file).",
        "",
        "## Side by side",
        "",
        "| | " + " | ".join(f"`{p.id}`" for p in packs) + " |",
        "|---|" + "---|" * len(packs),
    ]
    rows = {
        "document": [p.document for p in packs],
        "in force": [f"{p.valid_from} .. {p.valid_to or 'open'}" for p in packs],
        "status": ["draft (征求意见稿)" if p.draft else "in force" for p in packs],
        "parameters": [str(len(p.parameters)) for p in packs],
        "assumptions": [str(len(p.assumptions())) for p in packs],
        "values left to an operator": [str(sum(1 for q in p.parameters.values() if q.set_by)) for p in packs],
    }
    for node in sorted({n.split(".", 1)[0] for p in packs for n in p.parameters}):
        rows[f"`{node}.*`"] = [str(sum(1 for n in p.parameters if n.split(".", 1)[0] == node) or "") for p in packs]
    for label, cells in rows.items():
        out.append(f"| {label} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    for p in packs:
        out += ["", f"## `{p.id}`: {p.name}", "", f"{p.document}. In force {p.valid_from} .. {p.valid_to or 'open'}."]
        if p.draft:
            out.append("**A draft (征求意见稿): every decision, claim and notice under it says so.**")
        out += ["", "| parameter | unit | from | value | reference | source |", "|---|---|---|---|---|---|"]
        for name, q in sorted(p.parameters.items()):
            for v in q.values:
                value = _value(v.value) + (f" (set by {q.set_by})" if v.value is None and q.set_by else "")
                out.append(
                    f"| `{name}` | {q.unit} | {v.start} | {value.replace('|', '/')} | "
                    f"{v.reference.replace('|', '/')} | {v.source} |"
                )
    out.append("")
    return "\n".join(out)


def _base_pack(pack_id: str) -> Pack:
    """The pack as its documents have it, without any operator override on this machine."""
    return _load_pack(pack_id, None)


def write_docs() -> list[Path]:
    DOCS.mkdir(exist_ok=True)
    written = []
    for name, text in (("formats.md", formats_markdown()), ("policies.md", policies_markdown())):
        path = DOCS / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
