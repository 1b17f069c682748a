"""The actor document of a local person or group: what GET serves and what ``Update`` sends.

One builder for both, so an ``Update`` announcing a profile change or a key rotation carries
exactly the document a fetch returns (research/federation.md §2.6 "Actor key rotation": Lemmy
refetches actors only daily and never on a failed signature, so rotation must be pushed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from federation.documents import ActorProfile, group_document, person_document, shared_inbox_url
from federation.e2ee import actor_e2ee_properties
from moderation.feed import PublisherKey
from server.actor_keys import LocalKeys
from server.config import Config
from server.entities import account_uri, account_url
from server.models import Account, Group


def profile_of(config: Config, account: Account) -> ActorProfile:
    actor = account_uri(config, account)
    return ActorProfile(
        id=actor,
        username=account.username,
        name=account.display_name or account.username,
        summary=account.note,
        url=account_url(config, account),
        shared_inbox=shared_inbox_url(config.base_url),
        # The day only, as the client API shows it: the exact sign-up time identifies people.
        published=account.created_at.replace(hour=0, minute=0, second=0, microsecond=0),
        icon_url=f"{config.base_url}/static/avatar.png",
        image_url=f"{config.base_url}/static/header.png",
        fields=[(str(f.get("name", "")), str(f.get("value", ""))) for f in account.fields or [] if isinstance(f, dict)],
        discoverable=account.discoverable,
        manually_approves_followers=account.locked,
    )


def actor_document(
    config: Config, account: Account, keys: LocalKeys, settings: Group | None, *, master_key: str | None = None
) -> dict[str, Any]:
    """The Person or Group document (``settings``: the group's row, None for people).

    People also name their E2EE devices collection and, once set up, their master key
    (``master_key``: the public key from ``e2ee_identities``; docs/e2ee.md)."""
    profile = profile_of(config, account)
    suspended = account.suspended_at is not None
    if settings is not None:
        return group_document(
            profile,
            keys.public(),
            join_policy=settings.join_policy,
            members_only=settings.members_only,
            suspended=suspended,
        )
    document = person_document(
        profile,
        keys.public(),
        bot=account.bot,
        verified_professional=account.verified_professional,
        suspended=suspended,
    )
    if config.get("e2ee", "enabled") and not suspended:
        document.update(actor_e2ee_properties(devices_url=f"{profile.id}/devices", master_key=master_key))
    return document


def instance_actor_document(config: Config, keys: LocalKeys, moderation_keys: Sequence[PublisherKey]) -> dict[str, Any]:
    """The instance actor (``Application``) with its moderation keys, current and revoked, as
    FEP-521a ``Multikey`` entries in ``assertionMethod`` after its own Ed25519 key (the feed
    contract: subscribers read them as well as the dataset's ``keys``)."""
    from html import escape

    from federation.documents import application_document

    document = application_document(
        base_url=config.base_url,
        domain=config.domain,
        name=config.get("instance", "name"),
        summary=f"<p>{escape(config.get('instance', 'description'))}</p>",
        keys=keys.public(),
    )
    controller = document["id"]
    document["assertionMethod"] = [*document["assertionMethod"], *(key.to_json(controller) for key in moderation_keys)]
    return document
