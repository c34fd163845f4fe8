"""The committed docs are what the code generates."""

from __future__ import annotations

from ltc.docs import DOCS, formats_markdown, policies_markdown


def test_formats_md_is_generated_from_the_schemas() -> None:
    assert (DOCS / "formats.md").read_text(encoding="utf-8") == formats_markdown(), "run `uv run ltc docs`"


def test_policies_md_is_generated_from_the_packs() -> None:
    assert (DOCS / "policies.md").read_text(encoding="utf-8") == policies_markdown(), "run `uv run ltc docs`"
