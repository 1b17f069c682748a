"""``hearthside feed``: the signed moderation decision feed, for operators.

    hearthside feed publish        reconcile the feed with the current domain decisions
    hearthside feed rotate-key     replace the moderation key (the old one stays published, revoked)
    hearthside feed keys           list the moderation keys
    hearthside feed tombstone DOMAIN|ACTOR-URI   withdraw an entity from the feed, deleting its reasons

Each command opens the instance's database from its configuration (``--config``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from server.config import Config


async def _run(config: Config, work: Any) -> Any:
    from server import feeds
    from server.db import make_engine, make_sessionmaker

    engine = make_engine(config.database_url, pool_size=2)
    feeds.use_config(engine, config)
    try:
        async with make_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


def _config(args: argparse.Namespace) -> Config:
    from server.cli import _load

    return _load(args)


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish what the feed is missing (first publication, or after a crash)."""
    from server import feeds
    from server.cli import CliError
    from server.web import now

    config = _config(args)
    if not config.get("moderation", "feed_enabled"):
        raise CliError("publishing is disabled ([moderation] feed_enabled = false)")

    async def work(session: Any) -> list[feeds.Published]:
        return await feeds.publish_all(session, config, at=now())

    published: list[feeds.Published] = asyncio.run(_run(config, work))
    if args.json:
        for item in published:
            print(json.dumps({"changeId": item.change_id, "type": item.type, "entityKey": item.entity_key}))
        return 0
    for item in published:
        print(f"{item.change_id} {item.type} {item.entity_kind} {item.entity_key}")
    print(f"{len(published)} entr{'y' if len(published) == 1 else 'ies'} published")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from server import feeds
    from server.web import now

    config = _config(args)

    async def work(session: Any) -> str:
        row = await feeds.rotate_key(session, config, at=now())
        return row.key_id

    key_id: str = asyncio.run(_run(config, work))
    print(f"new moderation key {key_id}; the previous key stays published as revoked")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from server import feeds

    config = _config(args)

    async def work(session: Any) -> list[Any]:
        return await feeds.publisher_keys(session)

    for key in asyncio.run(_run(config, work)):
        state = f"revoked {key.revoked.isoformat()}" if key.revoked else "current"
        print(f"{key.id} {key.public_key.to_multibase()} created {key.created.isoformat()} {state}")
    return 0


def cmd_tombstone(args: argparse.Namespace) -> int:
    from moderation.feed import FeedError
    from server import feeds
    from server.cli import CliError
    from server.web import now

    config = _config(args)
    kind = "actor" if args.entity.startswith(("https://", "http://")) else "domain"

    async def work(session: Any) -> Any:
        return await feeds.tombstone(
            session, config, kind=kind, key=args.entity, actor_account_id=None, source="cli", at=now()
        )

    try:
        published = asyncio.run(_run(config, work))
    except FeedError as exc:
        raise CliError(str(exc)) from None
    if published is None:
        print(f"the feed holds nothing about {args.entity}: nothing to tombstone")
        return 1
    print(f"{published.change_id} Tombstone {kind} {published.entity_key}; earlier entries deleted")
    return 0


def add_parser(sub: Any) -> None:
    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help="configuration file (default: $HEARTHSIDE_CONFIG or data/hearthside.toml)")
        return p

    feed = sub.add_parser("feed", help="the signed moderation decision feed").add_subparsers(
        dest="feed_command", required=True
    )
    p = with_config(feed.add_parser("publish", help="publish what the feed is missing, and print it"))
    p.add_argument("--json", action="store_true", help="one JSON object per published entry")
    p.set_defaults(fn=cmd_publish)
    p = with_config(feed.add_parser("rotate-key", help="replace the moderation key (old one kept as revoked)"))
    p.set_defaults(fn=cmd_rotate_key)
    p = with_config(feed.add_parser("keys", help="list the moderation keys"))
    p.set_defaults(fn=cmd_keys)
    p = with_config(feed.add_parser("tombstone", help="withdraw a domain or actor from the feed, deleting its reasons"))
    p.add_argument("entity", help="a domain, or an actor URI (https://...)")
    p.set_defaults(fn=cmd_tombstone)
