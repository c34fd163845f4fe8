"""The operations channel: a Prefect notification block that sends through apprise to the URL an operator gives
(`LTC_OPS_NOTIFY_URL`): any apprise URL, or `env:NAME` (read from the server's environment when it sends) or
`block:NAME` (a Prefect Secret block, read when it sends), as for notices.

The Prefect server runs the Automations' notifications itself (so that a late run is reported even when nothing
serves the flows), so it must know this block type: the project declares this module as a Prefect collection
(`prefect.collections` entry point in pyproject.toml), which every Prefect process of this environment imports,
the server included. It imports Prefect, apprise and `common.channels` only."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import apprise
from prefect.blocks.abstract import NotificationBlock, NotificationError
from pydantic import Field, SecretStr

from common.channels import resolve_secret


class OperationsChannel(NotificationBlock):
    """Where operators are told that something needs them: an apprise URL, or env:NAME / block:NAME."""

    _block_type_name: ClassVar[str] = "LTC Operations Channel"
    _block_type_slug: ClassVar[str] = "ltc-operations-channel"
    _description: ClassVar[str] = "Notifications to the operators of ltc-claims, through apprise."

    url: SecretStr = Field(
        default=...,
        title="apprise URL",
        description="An apprise URL (mailto://, wecombot://, dingtalk://, json://...), or env:NAME, or block:NAME.",
    )

    async def notify(self, body: str, subject: str | None = None) -> None:
        try:
            target = await asyncio.to_thread(resolve_secret, self.url.get_secret_value())
        except Exception as e:
            if self._raise_on_failure:
                raise NotificationError(log=str(e)) from e
            return
        sender = apprise.Apprise()
        if not sender.add(target):
            if self._raise_on_failure:
                raise NotificationError(log="the operations channel URL is not one apprise can send to")
            return
        ok = await asyncio.to_thread(sender.notify, body=body, title=subject or "")
        if not ok and self._raise_on_failure:
            raise NotificationError(log="apprise could not deliver to the operations channel")
