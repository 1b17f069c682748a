"""Resolve a pasted URL into a known account or post (search with ``resolve=true``)."""

from __future__ import annotations

from federation.inbound import InvalidActivity, parse_actor, parse_note
from server.federation import Federation
from server.ingest import NOTE_TYPES, Ignored, store_note
from server.remote_actors import ActorUnavailable, resolve_actor, store_actor
from server.transport import FetchError

ACTOR_TYPES = ("Person", "Service", "Organization", "Application", "Group")


async def resolve_url(fed: Federation, url: str) -> tuple[int | None, int | None]:
    try:
        document = await fed.transport.fetch_json(url)
    except FetchError as exc:
        raise ActorUnavailable(exc.reason, f"{url}: {exc}") from None
    kind = document.get("type")
    try:
        if kind in ACTOR_TYPES:
            actor = parse_actor(document, fetched_from=url)
            async with fed.sessions() as session:
                account = await store_actor(session, actor)
                await session.commit()
                return account.id, None
        if kind in NOTE_TYPES:
            note = parse_note(document)
            if note.attributed_to is None:
                return None, None
            author = await resolve_actor(fed, note.attributed_to)
            group = None
            if note.audience:
                try:
                    candidate = await resolve_actor(fed, note.audience)
                    group = candidate if candidate.is_group else None
                except ActorUnavailable:
                    group = None
            async with fed.sessions() as session:
                status = await store_note(session, fed, note, author, group=group)
                await session.commit()
                return None, status.id if status is not None else None
    except (InvalidActivity, Ignored):
        return None, None
    return None, None
