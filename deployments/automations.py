"""The Automations of `deployments/automations.yaml` on a Prefect server: built from the file, each created or
updated by name (so that setting them up again changes nothing), with the operations channel block they notify.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from pydantic import SecretStr, ValidationError

from deployments.serve import FLOWS
from tasks.ops_channel import OperationsChannel

AUTOMATIONS_YAML = Path(__file__).resolve().parent / "automations.yaml"
CHANNEL_ENV = "LTC_OPS_NOTIFY_URL"


class SetupError(RuntimeError):
    pass


def automations_file() -> Path:
    return Path(os.environ.get("LTC_AUTOMATIONS_FILE") or AUTOMATIONS_YAML)


def load_spec(path: Path | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((path or automations_file()).read_text(encoding="utf-8"))
    return spec


def _trigger(item: dict[str, Any]) -> EventTrigger:
    related: list[dict[str, Any]] = []
    if "flows" in item:
        names = [f.name for f in FLOWS] if item["flows"] == "all" else list(item["flows"])
        related.append({"prefect.resource.role": "flow", "prefect.resource.name": names})
    if "deployments" in item:
        related.append({"prefect.resource.role": "deployment", "prefect.resource.name": list(item["deployments"])})
    proactive = item.get("posture") == "Proactive"
    return EventTrigger(
        match={"prefect.resource.id": item.get("resource", "prefect.flow-run.*")},
        match_related=related,  # type: ignore[arg-type]
        after=set(item.get("after") or []),
        expect=set(item["expect"]),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive if proactive else Posture.Reactive,
        threshold=1,
        within=dt.timedelta(seconds=int(item.get("within_seconds", 0))),
    )


def build(spec: dict[str, Any], block_id: Any, source: Path | None = None) -> list[AutomationCore]:
    """The file's automations, each notifying the channel block. An automation Prefect would refuse (a missing key,
    a Proactive wait under 10 s) is a SetupError naming the file and the automation."""
    out = []
    for i, item in enumerate(spec.get("automations") or []):
        name = item.get("name", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
        try:
            out.append(
                AutomationCore(
                    name=item["name"],
                    description=item.get("description", ""),
                    trigger=_trigger(item),
                    actions=[SendNotification(block_document_id=block_id, subject=item["subject"], body=item["body"])],
                )
            )
        except KeyError as e:
            raise SetupError(f"{source or automations_file()}: automation {name}: no {e.args[0]!r}") from None
        except (ValidationError, TypeError, ValueError) as e:
            detail = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise SetupError(f"{source or automations_file()}: automation {name}: {detail}") from None
    return out


async def set_up(channel_url: str | None = None, path: Path | None = None) -> dict[str, str]:
    """Save the operations channel and create or update every automation of the file; returns {name: "created" |
    "updated"}. The channel is LTC_OPS_NOTIFY_URL unless given."""
    url = channel_url or os.environ.get(CHANNEL_ENV)
    if not url:
        raise SetupError(f"no operations channel: set {CHANNEL_ENV} to an apprise URL, env:NAME or block:NAME")
    spec = load_spec(path)
    build(spec, uuid.uuid4(), path)  # the file checked whole before anything is saved on the server
    channel = OperationsChannel(url=SecretStr(url))
    block_id = await channel.save(spec["channel_block"], overwrite=True)
    done: dict[str, str] = {}
    async with get_client() as client:
        for automation in build(spec, block_id, path):
            existing = await client.read_automations_by_name(automation.name)
            if existing:
                await client.update_automation(existing[0].id, automation)
                for extra in existing[1:]:  # made by hand or by an older setup: one of each name is enough
                    await client.delete_automation(extra.id)
                done[automation.name] = "updated"
            else:
                await client.create_automation(automation)
                done[automation.name] = "created"
    return done
