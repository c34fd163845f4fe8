"""Fail points for fault tests: `LTC_FAILPOINT=<name>[@<n>]` kills the process with SIGKILL the n-th time (default
the first) the code passes the named point, as a power cut or an OOM kill would. Unset, a fail point costs a
dictionary lookup.

Points: billing.part.before_commit, billing.part.committed, payment.batch.before_commit,
payment.batch.committed, notices.sent.before_record.
"""

from __future__ import annotations

import os
import signal
import threading

_counts: dict[str, int] = {}
_lock = threading.Lock()


def failpoint(name: str) -> None:
    spec = os.environ.get("LTC_FAILPOINT")
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
