"""Incoming activities: validation, a normalised view, and origin checks.

How it works. The server hands every POSTed or fetched activity to :func:`validate_activity`
(limits and JSON Schema, :mod:`federation.inbound_schema`), then :func:`parse_activity` turns
it into an :class:`Incoming`: ids instead of "string or embedded object", addressing as tuples
of URLs with Public spelled one way, and, for ``Announce``/``Undo``/``Accept``/``Reject`` of an
embedded activity, that activity parsed as ``inner``. This covers the Lemmy and Mbin group
shapes (research/federation.md §8.4 item 24): ``Announce(Create(Page))``, ``Announce(Page)``,
``Announce(Like|Dislike|Delete|Undo(Like)|Remove|Lock|Block|Update|Add|Flag)``, ``audience``.
Posts, actors and WebFinger answers are read by :mod:`federation.inbound_objects`, re-exported
here.

:func:`check_origins` then decides whether the authenticated signer may speak for what the
activity claims (FEP-fe34; research/federation.md §8.3 item 14, §8.4 item 23):

- the signer must be the activity's ``actor``, and the activity's ``id`` must be on the actor's
  origin (Lemmy's rule);
- ``Create`` of an embedded object: the object is on the actor's origin and attributed to the
  actor (the actor is its ``attributedTo``, or one of them: PeerTube lists account and channel);
- ``Update``/``Delete``: only of something on the actor's origin (deleting an actor means its
  object is the actor); an embedded post must be attributed to the actor. A cross-origin one is
  refused with ``moderator_action`` set, for the group logic to accept from a moderator;
- ``Undo``: only of the actor's own activity; ``Move``: only of the actor itself;
- ``Announce`` of an embedded activity or object from another origin than the announcer (a
  Lemmy group redistributing a remote member's post): the announcement is genuine, but what it
  carries is only a claim, so the verdict is not ``ok`` and names the id that must carry a
  valid FEP-8b32 proof or be fetched again from its origin before it is applied.

What it guarantees: the verdict is computed from ids alone, with no network; ``ok`` means the
signer vouches for everything in the document, so a caller that only looks at ``ok`` fails
closed.
What it does not do: decide permissions (is this actor a moderator of this group, was this
Follow ours); the inbox logic does that with the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from federation.inbound_objects import (
    RemoteActor,
    RemoteAttachment,
    RemoteNote,
    Visibility,
    WebFingerAnswer,
    addressing,
    all_authors,
    as_list,
    datetime_field,
    optional_text,
    parse_actor,
    parse_jrd,
    parse_note,
    plain_text,
    ref_id,
    visibility_of,
)
from federation.inbound_schema import (
    AS_PUBLIC,
    MAX_ARRAY_ITEMS,
    MAX_JSON_DEPTH,
    MAX_JSON_VALUES,
    MAX_NAME_LENGTH,
    MAX_STRING_LENGTH,
    MAX_SUMMARY_LENGTH,
    MAX_WRAPPED,
    NOTE_TYPES,
    InvalidActivity,
    check_depth,
    check_limits,
    join_path,
    same_origin,
    type_names,
    validate_activity,
    validate_object,
    wraps_activity,
)

__all__ = [
    "AS_PUBLIC",
    "MAX_ARRAY_ITEMS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_VALUES",
    "MAX_NAME_LENGTH",
    "MAX_STRING_LENGTH",
    "MAX_SUMMARY_LENGTH",
    "Incoming",
    "InvalidActivity",
    "OriginVerdict",
    "RemoteActor",
    "RemoteAttachment",
    "RemoteNote",
    "Visibility",
    "WebFingerAnswer",
    "check_depth",
    "check_limits",
    "check_origins",
    "parse_activity",
    "parse_actor",
    "parse_jrd",
    "parse_note",
    "same_origin",
    "validate_activity",
    "validate_object",
    "visibility_of",
]


@dataclass(frozen=True, slots=True)
class Incoming:
    """The normalised view of an incoming activity that the inbox logic applies.

    ``object_id`` is the id of the object (a URL given directly, or an embedded object's
    ``id``); ``object_ids`` lists every referenced id (a ``Flag`` names an account and posts).
    ``object`` is the embedded object when one was given and it is not an activity;
    ``inner`` is the embedded activity of an ``Announce``/``Undo``/``Accept``/``Reject``,
    parsed. ``object_type`` is the embedded object's or activity's type. ``summary`` and
    ``content`` are plain text (a Lemmy ban reason, a report comment); ``end_time`` is Lemmy's
    ``endTime`` or Mbin's ``expires``; ``remove_data`` is Lemmy's flag on bans and deletions.
    ``raw`` is the document as received (read-only), for FEP-8b32 proof checks and for
    redistributing it unchanged.
    """

    id: str
    type: str
    actor: str
    object_id: str | None
    object_ids: tuple[str, ...]
    object_type: str | None
    object: Mapping[str, Any] | None = field(compare=False, repr=False)
    target: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    audience: str | None
    inner: Incoming | None
    published: datetime | None
    summary: str | None
    content: str | None
    end_time: datetime | None
    remove_data: bool
    raw: Mapping[str, Any] = field(compare=False, repr=False)


def _read_only(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _parse(doc: Mapping[str, Any], path: str, wrapped: int) -> Incoming:
    if not isinstance(doc, Mapping):
        raise InvalidActivity("not_an_object", path, "must be a JSON object")
    activity_id = ref_id(doc.get("id"))
    if activity_id is None or not isinstance(doc.get("id"), str):
        raise InvalidActivity("not_a_url" if "id" in doc else "missing", join_path(path, "id"), "must be a URL")
    kind = doc.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidActivity("bad_value", join_path(path, "type"), "must be a string")
    kind = type_names(kind)[0]
    actor = ref_id(doc.get("actor"))
    if actor is None:
        raise InvalidActivity("missing", join_path(path, "actor"), "must be a URL or an object with an id")

    raw_object = doc.get("object")
    objects = as_list(raw_object)
    object_ids = tuple(found for item in objects if (found := ref_id(item)))
    if len(object_ids) != len(objects):
        raise InvalidActivity("not_a_url", join_path(path, "object"), "must be a URL or an object with an id URL")
    embedded = raw_object if isinstance(raw_object, Mapping) else None
    object_types = type_names(embedded.get("type")) if embedded is not None else ()

    inner: Incoming | None = None
    if embedded is not None and wraps_activity(kind, embedded):
        if wrapped >= MAX_WRAPPED:
            raise InvalidActivity("too_deep", join_path(path, "object"), f"more than {MAX_WRAPPED} wrapped activities")
        inner = _parse(embedded, join_path(path, "object"), wrapped + 1)

    target = doc.get("target")
    target_id = ref_id(target)
    if target is not None and target_id is None:
        raise InvalidActivity("not_a_url", join_path(path, "target"), "must be a URL or an object with an id URL")
    audience = addressing(doc.get("audience"), join_path(path, "audience"))
    end_time_key = "endTime" if doc.get("endTime") is not None else "expires"
    return Incoming(
        id=activity_id,
        type=kind,
        actor=actor,
        object_id=object_ids[0] if object_ids else None,
        object_ids=object_ids,
        object_type=object_types[0] if object_types else None,
        object=_read_only(embedded) if embedded is not None and inner is None else None,
        target=target_id,
        to=addressing(doc.get("to"), join_path(path, "to")),
        cc=addressing(doc.get("cc"), join_path(path, "cc")),
        audience=audience[0] if audience else None,
        inner=inner,
        published=datetime_field(doc.get("published"), join_path(path, "published")),
        summary=plain_text(optional_text(doc.get("summary"), join_path(path, "summary"))),
        content=plain_text(optional_text(doc.get("content"), join_path(path, "content"))),
        end_time=datetime_field(doc.get(end_time_key), join_path(path, end_time_key)),
        remove_data=doc.get("removeData") is True,
        raw=_read_only(doc),
    )


def parse_activity(doc: Mapping[str, Any]) -> Incoming:
    """The normalised view of an activity that passed :func:`validate_activity`.

    Reads defensively anyway: a shape it cannot read raises :class:`InvalidActivity`, never
    another exception.
    """
    return _parse(doc, "", 0)


# --- Origin checks ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginVerdict:
    """Whether a signer may speak for an activity, and what still needs proving.

    - ``ok``: apply the activity as received (``needs_proof_or_fetch`` is then None).
    - not ``ok`` with ``needs_proof_or_fetch``: not as received, but the activity can still be
      accepted once the document with that id is verified: by a valid FEP-8b32 proof from its
      own actor, or by fetching it from its id's origin (then check the fetched document
      again). Reasons: ``signer_not_actor`` (the id is the activity itself),
      ``inner_unverified`` / ``object_unverified`` (an Announce carries an activity or object
      from another origin than the announcer: the announcement is genuine, its content a claim).
    - not ``ok`` and nothing to fetch: refuse; ``reason`` says why (``inner.`` prefixes a
      reason found in an embedded activity).

    ``moderator_action`` marks the one refusal that group logic may overturn: a ``Delete`` or
    ``Update`` (possibly inside ``Undo``/``Announce``) of an object on another origin than its
    actor, which is how Lemmy moderators remove remote comments and edit a community from their
    own instance (research/federation.md §2.4, FEP-1b12 "Group moderation"). Accept it only if
    the actor is a moderator of the group in ``audience`` (and, inside an Announce, that group
    is the announcer); otherwise refuse as for any other reason.
    """

    ok: bool
    reason: str
    needs_proof_or_fetch: str | None = None
    moderator_action: bool = False


_ACCEPT = OriginVerdict(True, "ok")


def _refuse(reason: str) -> OriginVerdict:
    return OriginVerdict(False, reason)


def _check(activity: Incoming) -> OriginVerdict:
    """The checks that hold for an activity whose actor is authenticated (or vouched for)."""
    if not same_origin(activity.id, activity.actor):
        return _refuse("id_origin")
    kind = activity.type
    embedded = activity.object
    if kind == "Create":
        if embedded is None or activity.object_id is None:
            return _ACCEPT  # a bare reference is fetched from its own origin
        if not same_origin(activity.object_id, activity.actor):
            return _refuse("object_origin")
        if activity.actor not in all_authors(embedded.get("attributedTo")):
            return _refuse("attribution")
        return _ACCEPT
    if kind in ("Update", "Delete"):
        if activity.object_id is None or not same_origin(activity.object_id, activity.actor):
            return OriginVerdict(False, "object_origin", moderator_action=True)
        if (
            embedded is not None
            and "attributedTo" in embedded
            and NOTE_TYPES.intersection(type_names(embedded.get("type")))
            and activity.actor not in all_authors(embedded.get("attributedTo"))
        ):
            return _refuse("attribution")
        return _ACCEPT
    if kind == "Move":
        return _ACCEPT if activity.object_id == activity.actor else _refuse("move_object")
    if kind == "Undo" and activity.inner is not None:
        if activity.inner.actor != activity.actor:
            return _refuse("undo_actor")
        return _nested(_check(activity.inner))
    if kind == "Announce":
        if activity.inner is not None:
            verdict = _nested(_check(activity.inner))
            vouched = same_origin(activity.inner.id, activity.actor) and same_origin(
                activity.inner.actor, activity.actor
            )
            if verdict.ok and not vouched:
                return OriginVerdict(False, "inner_unverified", activity.inner.id)
            if verdict.moderator_action and not vouched:
                return OriginVerdict(False, verdict.reason, activity.inner.id, moderator_action=True)
            return verdict
        if embedded is not None and activity.object_id is not None:
            # An object is only ever authored on its own origin (Lemmy's
            # verify_domains_match(id, attributedTo)): a group cannot vouch for a post it
            # claims someone elsewhere wrote.
            authors = all_authors(embedded.get("attributedTo"))
            if any(not same_origin(activity.object_id, author) for author in authors):
                return _refuse("attribution_origin")
            if same_origin(activity.object_id, activity.actor):
                return _ACCEPT
            return OriginVerdict(False, "object_unverified", activity.object_id)
    # Accept/Reject name our own Follow (matched by id by the inbox logic); Like, Follow, Block,
    # Flag, Add, Remove, Lock, … refer to things by id.
    return _ACCEPT


def _nested(verdict: OriginVerdict) -> OriginVerdict:
    if verdict.ok:
        return verdict
    return OriginVerdict(False, f"inner.{verdict.reason}", verdict.needs_proof_or_fetch, verdict.moderator_action)


def check_origins(incoming: Incoming, signer_actor: str) -> OriginVerdict:
    """Decide whether ``signer_actor`` (the authenticated HTTP-signature actor) may deliver
    ``incoming`` as it is, following FEP-fe34 (see the module notes for the rules)."""
    if incoming.actor != signer_actor:
        return OriginVerdict(False, "signer_not_actor", incoming.id)
    return _check(incoming)
