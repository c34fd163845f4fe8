"""A page rendered in headless Chromium (Debian's `chromium`), for the reports' tests: the test is skipped where the
machine has no Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def colour_counts(page: Path, png: Path, height: int, colours: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """Screenshot `page` 900 pixels wide and `height` high into `png`; how many pixels are of each colour."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine to render the page")
    from PIL import Image

    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size=900,{height}",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = Image.open(png).convert("RGB").get_flattened_data()
    return {name: sum(1 for p in pixels if p == rgb) for name, rgb in colours.items()}
