"""Documentation generated from the code, so the two cannot drift: `ltc docs` rewrites `docs/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rules import packinfo
from rules.engine import Pack, _load_pack, pack_ids
from rules.inputs import PAYER_MEANINGS, PERIODS, RESOLVED_ON
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
        "Every file is CSV with a header line. `ltc load KIND FILE` loads it: rows that fail a check are",
        "kept in quarantine and reported as `file:line: field: reason`; the others are stored. Loading the",
        "same file again changes nothing.",
        "",
        "A file is UTF-8 unless its encoding is given: `ltc load KIND FILE --encoding gb18030` (`ltc run` takes",
        "the same option), or in the inbox a name ending `.gb18030.csv` (or the inbox run's `encodings` for its",
        "kind). GB18030 is what Excel on a Chinese system saves as CSV; it contains GBK and GB2312, and rare",
        "characters of names such as 𠮷 (four bytes in GB18030, not in GBK at all). A file that begins with a",
        "byte-order mark is read in the encoding the mark names. A file with a byte that is not valid in its",
        "encoding is refused whole, naming the byte's offset; an empty file is refused, and nothing is loaded.",
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
        "contributions by": [_periods(p.id) for p in packs],
        "payers": [", ".join(f"`{x}`" for x in packinfo.payers(p.id) or {}) or NOT_SAID for p in packs],
    }
    for node in sorted({n.split(".", 1)[0] for p in packs for n in p.parameters}):
        rows[f"`{node}.*`"] = [str(sum(1 for n in p.parameters if n.split(".", 1)[0] == node) or "") for p in packs]
    for label, cells in rows.items():
        out.append(f"| {label} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    out += _periods_and_dates(packs) + _payers(packs)
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


NOT_SAID = "(pack.yaml does not say)"


def _periods(pack_id: str) -> str:
    given = packinfo.periods(pack_id)
    return " and ".join(f"{p} (`{PERIODS[p]}`)" for p in given) if given else NOT_SAID


def _periods_and_dates(packs: list[Pack]) -> list[str]:
    out = [
        "",
        "## Periods and the dates rules are resolved on",
        "",
        "Billing is by the month in every pack (`YYYY-MM`). Contributions are due by the month or by the year, as",
        "each pack's `pack.yaml` says (`period`); `ltc run contributions` refuses a period of another form.",
        "",
        "| pack | contributions by |",
        "|---|---|",
    ]
    out += [f"| `{p.id}` | {_periods(p.id)} |" for p in packs]
    out += [
        "",
        "Each pack function runs in the version in force on one date, and reads its parameters as in force on that",
        "date, except a value its docstring says it reads on another (`rules.inputs.RESOLVED_ON`):",
        "",
        "| function | resolved on |",
        "|---|---|",
    ]
    out += [f"| `{name}` | {when} |" for name, when in RESOLVED_ON.items()]
    return out


def _payers(packs: list[Pack]) -> list[str]:
    named = {p.id: packinfo.payers(p.id) for p in packs}
    out = [
        "",
        "## Payers",
        "",
        "Who pays a contribution has one name in every pack, wherever a document means that payer",
        "(`rules.inputs.PAYER_MEANINGS`). A payer is a line of money a document names on its own (who pays, and for",
        "what), so that each can be collected and reconciled. Each pack's `pack.yaml` (`payers`) names those its",
        "document has, in its words; a pack's contributions give no other (the contributions run stops, naming it).",
        "",
        "| payer | meaning | packs |",
        "|---|---|---|",
    ]
    for code, meaning in PAYER_MEANINGS.items():
        users = ", ".join(f"`{pid}`" for pid, given in named.items() if given and code in given)
        out.append(f"| `{code}` | {meaning} | {users} |")
    for pid, given in named.items():
        out += ["", f"### `{pid}`", ""]
        if not given:
            out.append("Its `pack.yaml` does not name its payers.")
            continue
        out += ["| payer | the document's words |", "|---|---|"]
        out += [f"| `{code}` | {words.replace('|', '/')} |" for code, words in given.items()]
    return out


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
