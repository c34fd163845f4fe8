"""Where a notice or an operator's notification goes: a URL as stored, or the secret it names. The record, the
repository and Prefect's blocks keep only the name (`env:NAME`, `block:NAME`), never a URL with its token; the URL
is read when the message is sent."""

from __future__ import annotations

import os
from typing import Any


class SecretMissing(LookupError):
    """A channel names a secret that is not there."""


def resolve_secret(url: str) -> str:
    """A channel as stored, or the secret it names: `env:NAME` is the URL in the environment variable NAME,
    `block:NAME` the URL in the Prefect Secret block NAME."""
    if url.startswith("env:"):
        name = url[4:]
        value = os.environ.get(name)
        if not value:
            raise SecretMissing(f"environment variable {name} is not set")
        return value
    if url.startswith("block:"):
        from prefect.blocks.system import Secret

        try:
            block: Any = Secret.load(url[6:], _sync=True)  # type: ignore[call-arg]
            return str(block.get())
        except ValueError as e:
            raise SecretMissing(f"Prefect Secret block {url[6:]!r}: {e}") from None
    return url
