"""Where the system keeps its record and files.

`LTC_HOME` (default: `./.ltc` under the working directory) holds the embedded SQLite database, the bank files,
the file outbox of notices and the demo's synthetic inputs. `LTC_DATABASE_URL` selects another database, e.g.
`postgresql+psycopg://postgres@127.0.0.1:5432/ltc`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str

    @property
    def bank_dir(self) -> Path:
        return self.home / "bank"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"

    @property
    def default_notify_url(self) -> str:
        """The demo's delivery target: a file outbox on this machine, so nothing leaves it."""
        return f"outbox://localhost{self.outbox_dir.resolve()}"


def get_settings() -> Settings:
    home = Path(os.environ.get("LTC_HOME") or Path.cwd() / ".ltc")
    url = os.environ.get("LTC_DATABASE_URL") or f"sqlite:///{(home / 'ltc.db').resolve()}"
    return Settings(home=home, database_url=url)


def notify_url_for(url: str | None) -> str:
    """A recipient's own apprise URL, or the file outbox when none is on record."""
    return url or get_settings().default_notify_url
