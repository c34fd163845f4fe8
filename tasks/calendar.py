"""Chinese working days: weekends and statutory holidays off, make-up working days on.

The holiday schedule comes from the maintained `chinesecalendar` library. For a year it does not know yet (the
State Council publishes each year's schedule late in the year before), the fallback is Monday to Friday, and
`known_year` lets callers say so in their output.

An agency's working hours (`WorkingHours`) are its own setting (agencies file: `day_starts_at`, `day_ends_at`,
`visit_minutes`). Where it gives none, the defaults below apply. They are operator settings, not policy, and an
assumption of this system: no document fixes them.

Each year is asked of the library once per process and kept (`_year`), so a scheduling run over thousands of
applications costs a set lookup per day, not a library call.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import chinese_calendar

# Assumption (an operator setting; no document fixes it): an agency's first visit of a working day starts at
# 09:00, its last visit ends by 17:30, and a visit takes 90 minutes, travel to the applicant's home included.
DEFAULT_DAY_STARTS_AT = "09:00"
DEFAULT_DAY_ENDS_AT = "17:30"
DEFAULT_VISIT_MINUTES = 90
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def minutes_of(clock: str) -> int:
    """Minutes after midnight of an HH:MM clock time."""
    if not re.match(CLOCK, clock):
        raise ValueError(f"{clock!r} is not a time of day HH:MM")
    hh, mm = clock.split(":")
    return int(hh) * 60 + int(mm)


def clock_of(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class WorkingHours:
    """When an agency's visits may take place on a working day: each visit starts at `starts` plus a whole number
    of visits, and ends by `ends` (minutes after midnight)."""

    starts: int
    ends: int
    visit: int

    @classmethod
    def of(cls, agency: Mapping[str, Any]) -> WorkingHours:
        """An agency's hours from its record (columns day_starts_at, day_ends_at, visit_minutes), with the
        defaults for what it leaves empty."""
        return cls(
            minutes_of(agency.get("day_starts_at") or DEFAULT_DAY_STARTS_AT),
            minutes_of(agency.get("day_ends_at") or DEFAULT_DAY_ENDS_AT),
            int(agency.get("visit_minutes") or DEFAULT_VISIT_MINUTES),
        )

    @property
    def times(self) -> int:
        """How many visits one team can make in a day, one after another."""
        return max((self.ends - self.starts) // self.visit, 0) if self.visit > 0 else 0

    def start(self, time_index: int) -> str:
        """The start of the day's time_index-th visit (from 0), HH:MM; never outside the hours."""
        if not 0 <= time_index < self.times:
            raise ValueError(f"visit {time_index + 1} of a day does not fit between {self}")
        return clock_of(self.starts + self.visit * time_index)

    def __str__(self) -> str:
        return f"{clock_of(self.starts)} and {clock_of(self.ends)} ({self.visit} minutes a visit)"


@functools.lru_cache(maxsize=64)
def _year(year: int) -> tuple[tuple[int, ...], frozenset[int], bool]:
    """The working days of a year as sorted ordinals and as a set, and whether the library knows the year."""
    first = dt.date(year, 1, 1)
    days = [first + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - first).days)]
    try:
        working = [d.toordinal() for d in days if chinese_calendar.is_workday(d)]
        known = True
    except NotImplementedError:
        working = [d.toordinal() for d in days if d.weekday() < 5]
        known = False
    return tuple(working), frozenset(working), known


def known_year(day: dt.date) -> bool:
    return _year(day.year)[2]


def is_working_day(day: dt.date) -> bool:
    return day.toordinal() in _year(day.year)[1]


def working_days(first: dt.date, last: dt.date) -> list[dt.date]:
    """The working days from `first` to `last`, both included, in order."""
    out: list[dt.date] = []
    for year in range(first.year, last.year + 1):
        ordinals = _year(year)[0]
        lo = bisect.bisect_left(ordinals, first.toordinal())
        hi = bisect.bisect_right(ordinals, last.toordinal())
        out.extend(dt.date.fromordinal(o) for o in ordinals[lo:hi])
    return out


@functools.lru_cache(maxsize=4096)
def add_working_days(day: dt.date, n: int) -> dt.date:
    """The n-th working day after `day` (n >= 1); `day` itself if n == 0 and it is a working day, else the next
    working day."""
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    year, ordinal = day.year, day.toordinal()
    strict, count = n > 0, max(n, 1)  # count the working days after `day`, or from it on for n == 0
    while True:
        ordinals = _year(year)[0]
        i = (bisect.bisect_right if strict else bisect.bisect_left)(ordinals, ordinal)
        if count <= len(ordinals) - i:
            return dt.date.fromordinal(ordinals[i + count - 1])
        count -= len(ordinals) - i
        year, ordinal, strict = year + 1, dt.date(year + 1, 1, 1).toordinal(), False
