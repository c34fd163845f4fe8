"""Fail points for fault tests: `LTC_FAILPOINT=<name>[@<n>]` kills the process with SIGKILL the n-th time (default
the first) the code passes the named point, as a power cut or an OOM kill would. `LTC_FAILPOINT=<name>[@<n>]:pause`
instead stops there, after writing the file `LTC_FAILPOINT_MARKER` names, until that file is removed or
`LTC_FAILPOINT_PAUSE` seconds (default 30) have passed, so that a test can act on the process's open transaction
(cut its database connection, say) and then let it go on. Unset, a fail point costs a dictionary lookup.

Points: billing.part.before_commit, billing.part.committed, payment.batch.before_commit,
payment.batch.committed, notices.sent.before_record.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

_counts: dict[str, int] = {}
_lock = threading.Lock()


def failpoint(name: str) -> None:
    spec = os.environ.get("LTC_FAILPOINT")
    if not spec:
        return
    point, _, action = spec.partition(":")
    target, _, nth = point.partition("@")
    if target != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        passes = _counts[name]
    if passes < int(nth or 1):
        return
    if action == "pause":
        if passes > int(nth or 1):  # a pause happens once
            return
        marker = os.environ.get("LTC_FAILPOINT_MARKER")
        if marker:
            Path(marker).write_text(f"{name} {os.getpid()}\n", encoding="utf-8")
        until = time.monotonic() + float(os.environ.get("LTC_FAILPOINT_PAUSE", "30"))
        while time.monotonic() < until and (not marker or Path(marker).exists()):
            time.sleep(0.1)
        return
    os.kill(os.getpid(), signal.SIGKILL)
