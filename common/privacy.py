"""Personal data out of logs: any 18-character 身份证号 that reaches a log record is masked when the record is
made, whichever logger (ours, Prefect's, a library's) writes it.

Only internal ids (person_id, application_id) belong in Prefect parameters, results, artifacts and logs; this is
the net under that rule, not the rule.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# 17 digits and a digit or X, not part of a longer run of letters or digits.
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def mask_ids(text: str) -> str:
    """Every ID number in the text as its first 3 and last 4 characters: 450103199001011234 -> 450***********1234."""
    return ID_NUMBER.sub(lambda m: m.group(0)[:3] + "*" * 11 + m.group(0)[-4:], text)


_installed = False


def install_log_masking() -> None:
    """Mask ID numbers in every log record from now on (idempotent)."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def masked(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return record
        clean = mask_ids(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(masked)
    _installed = True
