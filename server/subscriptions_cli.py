"""``hearthside subscribe``, ``hearthside sync`` and ``hearthside drafts``: subscriptions to other
instances' moderation decisions from the command line (the same functions as the admin API).

Changes made here are audited with no actor (the instance's operator at the console).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from server.subscriptions import FORMATS, MODES, POLICIES, RETRACTION_MODES


def _run(args: argparse.Namespace, work: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """Run ``work(fed, sessions)`` with the instance's database and outbound transport."""
    from server.cli import _load
    from server.db import make_engine, make_sessionmaker
    from server.runner import running_federation

    config = _load(args)

    async def go() -> Any:
        engine = make_engine(config.database_url)
        try:
            sessions = make_sessionmaker(engine)
            async with running_federation(config, sessions, workers=False) as fed:
                return await work(fed, sessions)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


def cmd_subscribe(args: argparse.Namespace) -> int:
    from server.cli import CliError
    from server.subscriptions import Settings, SyncError, create_subscription
    from server.transport import FetchError
    from server.web import now

    settings = Settings(
        format=args.format,
        name=args.name or "",
        mode=args.mode,
        trust_weight=args.weight,
        max_policy=args.max_policy,
        retraction_mode=args.retraction_mode,
        independence_group=args.group,
    )

    async def work(fed: Any, sessions: Any) -> dict[str, Any]:
        async with sessions() as session:
            try:
                sub = await create_subscription(fed, session, args.url, settings, at=now())
            except (ValueError, FetchError, SyncError) as exc:
                raise CliError(f"cannot subscribe: {exc}") from None
            await session.commit()
            return {"id": str(sub.id), "format": sub.format, "mode": sub.mode, "name": sub.name}

    data = _run(args, work)
    _print(args, data, f"subscribed: id {data['id']} ({data['format']}, {data['mode']} mode) {data['name']}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from server.models import Subscription
    from server.subscriptions import SyncBusy, sync_subscription

    async def work(fed: Any, sessions: Any) -> list[dict[str, Any]]:
        if args.id:
            ids = [int(args.id)]
        else:
            async with sessions() as session:
                ids = list(await session.scalars(select(Subscription.id).where(Subscription.enabled.is_(True))))
        results = []
        for sub_id in ids:
            try:
                results.append((await sync_subscription(fed, sub_id)).to_json())
            except SyncBusy:
                results.append({"subscription_id": str(sub_id), "status": "busy"})
            except LookupError:
                results.append({"subscription_id": str(sub_id), "status": "not_found"})
        return results

    results = _run(args, work)
    for result in results:
        _print(
            args,
            result,
            f"{result['subscription_id']}: {result['status']}"
            + (f" ({result.get('error')})" if result.get("error") else "")
            + (
                f", {result['applied']} applied, {result['drafts']} drafts, {result['rejected']} entries rejected"
                if "applied" in result
                else ""
            ),
        )
    return 0 if all(r["status"] in ("ok", "not_modified") for r in results) else 1


def cmd_drafts(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from server.cli import CliError
    from server.models import ModerationDraft
    from server.subscriptions import ApplyConflict, decide_draft
    from server.web import now

    async def work(fed: Any, sessions: Any) -> list[dict[str, Any]]:
        async with sessions() as session:
            if args.action == "list":
                drafts = await session.scalars(
                    select(ModerationDraft).where(ModerationDraft.state == "pending").order_by(ModerationDraft.id)
                )
                return [
                    {"id": str(d.id), "entity": d.entity_key, "action": d.action, "policy": d.policy, "why": d.reasons}
                    for d in drafts
                ]
            if not (args.id or "").isdigit():
                raise CliError("drafts accept/reject: give the draft's id")
            draft = await session.get(ModerationDraft, int(args.id))
            if draft is None:
                raise CliError(f"no draft {args.id}")
            try:
                await decide_draft(session, draft, accept=args.action == "accept", actor_account_id=None, at=now())
            except ApplyConflict as exc:
                raise CliError(str(exc)) from None
            await session.commit()
            return [{"id": str(draft.id), "state": draft.state}]

    for item in _run(args, work):
        text = " ".join(f"{k}={v}" for k, v in item.items())
        _print(args, item, text)
    return 0


def add_parser(sub: Any) -> None:
    """``subscribe``, ``sync`` and ``drafts`` commands of ``hearthside``."""

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="configuration file (default: $HEARTHSIDE_CONFIG or data/hearthside.toml)")
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    p = common(sub.add_parser("subscribe", help="subscribe to another instance's decisions or a block list"))
    p.add_argument("url")
    p.add_argument("--format", choices=FORMATS, help="detected when not given")
    p.add_argument("--mode", choices=MODES, default="draft", help="draft (default): changes wait for a moderator")
    p.add_argument("--weight", type=int, default=1, help="trust weight (default 1)")
    p.add_argument("--max-policy", choices=POLICIES, default="drop")
    p.add_argument("--retraction-mode", choices=RETRACTION_MODES, default="remove")
    p.add_argument("--group", help="independence group (feeds known to copy each other)")
    p.add_argument("--name")
    p.set_defaults(fn=cmd_subscribe)

    p = common(sub.add_parser("sync", help="sync one subscription (or all enabled ones) now"))
    p.add_argument("id", nargs="?")
    p.set_defaults(fn=cmd_sync)

    p = common(sub.add_parser("drafts", help="changes proposed by subscriptions"))
    p.add_argument("action", nargs="?", default="list", choices=["list", "accept", "reject"])
    p.add_argument("id", nargs="?")
    p.set_defaults(fn=cmd_drafts)
