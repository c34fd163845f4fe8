"""Chinese working days: weekends and statutory holidays off, make-up working days on.

The holiday schedule comes from the maintained `chinesecalendar` library. For a year it does not know yet (the
State Council publishes each year's schedule late in the year before), the fallback is Monday to Friday, and
`known_year` lets callers say so in their output.
"""

from __future__ import annotations

import datetime as dt

import chinese_calendar


def known_year(day: dt.date) -> bool:
    try:
        chinese_calendar.is_workday(day)
    except NotImplementedError:
        return False
    return True


def is_working_day(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def add_working_days(day: dt.date, n: int) -> dt.date:
    """The n-th working day after `day` (n >= 1); `day` itself if n == 0 and it is a working day."""
    d = day
    if n == 0:
        while not is_working_day(d):
            d += dt.timedelta(days=1)
        return d
    while n > 0:
        d += dt.timedelta(days=1)
        if is_working_day(d):
            n -= 1
    return d
