"""Documents Hearthside serves and sends: WebFinger, host-meta, NodeInfo, actors, notes,
collections and activities. Plain data in, JSON-ready dicts out.

Design note
-----------
Every shape here is what Mastodon and Lemmy accept today (research/federation.md §8.1, §8.2),
written once so the GET routes and the delivery code emit the same thing:

* ``@context`` always starts with the ActivityStreams context (Mastodon drops documents
  without it, §8.1 item 2). Actors add ``security/v1`` for ``publicKey``, and the
  data-integrity and multikey contexts for the FEP-521a ``assertionMethod``; every document
  that uses Mastodon, Lemmy or Hearthside terms carries :data:`EXTENSION_CONTEXT`.
* An actor has exactly one ``publicKey`` object ``{id: actor#main-key, owner, publicKeyPem}``
  (RSA; Lemmy's struct and signed-GET parser need a single object and a ``#`` fragment, §8.1
  item 4) and its Ed25519 key as a ``Multikey`` in ``assertionMethod`` (FEP-521a).
* ``inbox``, ``outbox``, ``followers``, ``following`` and ``endpoints.sharedInbox`` are always
  present (Lemmy's Person and Group structs require ``outbox``, §8.1 item 3).
* Addressing (:func:`addressing`) follows Mastodon's visibility reading of ``to``/``cc``
  (§2.5) and, in groups, FEP-1b12 / Lemmy: ``to = [group, Public]`` for public groups and
  ``to = [group, group followers]`` — never Public — for members-only groups (Lemmy private
  communities, §2.4, §5).
* Activities embed their object without its own ``@context``; an ``Announce`` carries the
  announced activity exactly as given (FEP-1b12: unchanged, so FEP-8b32 proofs still verify).

What it refuses: ``direct`` visibility (private messages are end-to-end encrypted only),
naive datetimes, and WebFinger resources that are not URIs (:class:`BadResource`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

JSON = dict[str, Any]

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
DATA_INTEGRITY_CONTEXT = "https://w3id.org/security/data-integrity/v1"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ACTIVITY_JSON = "application/activity+json"
LD_JSON_PROFILE = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
AS_TYPE_PROPERTY = "https://www.w3.org/ns/activitystreams#type"

# Namespace of Hearthside's own terms. A URN: it names, it is never fetched (JSON-LD
# consumers that expand terms only need an absolute IRI).
HEARTHSIDE_NS = "urn:hearthside:ns#"
E2EE_NS = "urn:hearthside:e2ee#"

EXTENSION_CONTEXT: JSON = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "toot": "http://joinmastodon.org/ns#",
    "discoverable": "toot:discoverable",
    "indexable": "toot:indexable",
    "suspended": "toot:suspended",
    # Mastodon's mapping, quirk included (research/federation.md §2.7, JSON-LD row).
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "lemmy": "https://join-lemmy.org/ns#",
    "postingRestrictedToMods": "lemmy:postingRestrictedToMods",
    "hearthside": HEARTHSIDE_NS,
    "verifiedProfessional": "hearthside:verifiedProfessional",
    "membersOnly": "hearthside:membersOnly",
    "joinPolicy": "hearthside:joinPolicy",
    # End-to-end encrypted messages (docs/e2ee.md): prefixed terms such as "e2ee:devices".
    "e2ee": E2EE_NS,
}

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
# JSON-LD consumers (Fedify) only see terms their contexts define: ``assertionMethod`` comes from
# did/v1 (FEP-521a's example context lacks it) and ``proof`` from data-integrity/v1; without them
# the Ed25519 key and FEP-8b32 proofs are silently dropped (found against the Fedify peer). The
# order is Fedify's own for actors.
ACTOR_CONTEXT: list[Any] = [
    AS_CONTEXT,
    SECURITY_CONTEXT,
    DATA_INTEGRITY_CONTEXT,
    DID_CONTEXT,
    MULTIKEY_CONTEXT,
    EXTENSION_CONTEXT,
]
OBJECT_CONTEXT: list[Any] = [AS_CONTEXT, DATA_INTEGRITY_CONTEXT, EXTENSION_CONTEXT]

NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/{version}"
NodeInfoVersion = Literal["2.0", "2.1"]
SOFTWARE_NAME = "hearthside"
WEBFINGER_PROFILE_PAGE = "http://webfinger.net/rel/profile-page"


class DocumentError(ValueError):
    """A document cannot be built from what was given (the message names the input)."""


# ---------------------------------------------------------------------------- small helpers


def format_time(moment: datetime) -> str:
    """``xsd:dateTime`` in UTC with second precision and ``Z``, as Mastodon writes it."""
    if moment.tzinfo is None:
        raise DocumentError("format_time: naive datetime (give an aware UTC datetime)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unique(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def _without_context(document: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in document.items() if k != "@context"}


@dataclass(frozen=True, slots=True)
class ActorUrls:
    """The URLs of a local actor, all derived from its id (the URL scheme in one place)."""

    id: str
    inbox: str
    outbox: str
    followers: str
    following: str
    moderators: str
    main_key: str
    ed25519_key: str

    @classmethod
    def of(cls, actor_id: str) -> ActorUrls:
        return cls(
            id=actor_id,
            inbox=f"{actor_id}/inbox",
            outbox=f"{actor_id}/outbox",
            followers=f"{actor_id}/followers",
            following=f"{actor_id}/following",
            moderators=f"{actor_id}/moderators",
            main_key=f"{actor_id}#main-key",
            ed25519_key=f"{actor_id}#ed25519-key",
        )


def shared_inbox_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/inbox"


def instance_actor_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/actor"


# ---------------------------------------------------------------------------- WebFinger


class UnknownResource(LookupError):
    """A well-formed resource this server does not hold (answer 404)."""


class BadResource(ValueError):
    """A ``resource`` parameter that is missing or no URI at all (answer 400)."""


@dataclass(frozen=True, slots=True)
class WebFingerQuery:
    """What a WebFinger ``resource`` asks for.

    ``kind`` ``acct``: the account named ``username`` (a person or a group); ``actor_url``:
    the account at one of our actor (or profile) URLs, ``actor_type`` saying which kind the
    URL names; ``instance``: the instance actor (FEP-d556 ``https://host/``, our ``/actor`` URL,
    or ``acct:host@host``).
    """

    kind: Literal["acct", "actor_url", "instance"]
    username: str | None = None
    actor_type: Literal["Person", "Group"] | None = None


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_USERNAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MAX_RESOURCE_CHARS = 2048


def parse_webfinger_resource(resource: str | None, *, domain: str, base_url: str) -> WebFingerQuery:
    """Read a WebFinger ``resource`` (RFC 7033 §4.1, RFC 7565, FEP-d556).

    Accepts ``acct:user@domain`` (also without ``acct:`` and with a leading ``@``, as some
    clients send), our actor and profile URLs, ``https://host/`` and ``acct:host@host`` for
    the instance actor. A URI with another scheme (``mailto:``, ``xmpp:``), another host or an
    unknown path raises :class:`UnknownResource` (404, FediTest: research/interop-peers.md);
    a missing, empty, oversized or non-URI value raises :class:`BadResource` (400).
    """
    if resource is None or not resource.strip():
        raise BadResource("resource: missing (give acct:user@host or an actor URL)")
    if len(resource) > MAX_RESOURCE_CHARS:
        raise BadResource(f"resource: longer than {MAX_RESOURCE_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in resource):
        raise BadResource("resource: contains whitespace or control characters")
    domain = domain.lower()
    base = urlsplit(base_url)
    scheme_match = _SCHEME.match(resource)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme in ("http", "https"):
        return _parse_url_resource(resource, domain=domain, base_scheme=base.scheme.lower())
    if scheme == "acct" or (not scheme and "@" in resource) or _looks_like_acct_with_port(resource, scheme):
        body = resource[5:] if scheme == "acct" else resource
        return _parse_acct(body.removeprefix("@"), domain=domain)
    if scheme:
        raise UnknownResource(f"resource: scheme {scheme!r} is not served here")
    raise BadResource("resource: not a URI (give acct:user@host or an actor URL)")


def _looks_like_acct_with_port(resource: str, scheme: str) -> bool:
    # "host:8080@host:8080" (the instance actor's handle on a non-default port) parses as a
    # URI whose "scheme" is the host; it is an acct without its prefix.
    return bool(scheme) and "@" in resource and "." in scheme


def _parse_acct(body: str, *, domain: str) -> WebFingerQuery:
    user, sep, host = body.rpartition("@")
    if not sep or not user or not host:
        raise BadResource("resource: an acct: URI needs user@host")
    if host.lower() != domain:
        raise UnknownResource("resource: names an account on another domain")
    if user.lower() == domain:
        return WebFingerQuery("instance")
    if not _USERNAME.match(user):
        raise UnknownResource("resource: no such account")
    return WebFingerQuery("acct", username=user)


def _parse_url_resource(resource: str, *, domain: str, base_scheme: str) -> WebFingerQuery:
    try:
        parts = urlsplit(resource)
        netloc = parts.netloc.lower()
    except ValueError:
        raise BadResource("resource: not a valid URL") from None
    if not netloc:
        raise BadResource("resource: a URL needs a host")
    # https://host/ always; http://host/ only when this instance itself is served over http.
    if netloc != domain or (parts.scheme.lower() == "http" and base_scheme != "http"):
        raise UnknownResource("resource: names something on another origin")
    if parts.query or parts.fragment:
        raise UnknownResource("resource: no such resource")
    path = parts.path
    if path in ("", "/", "/actor"):
        return WebFingerQuery("instance")
    segments = path.split("/")
    if len(segments) == 3 and segments[0] == "" and _USERNAME.match(segments[2]):
        name = segments[2]
        if segments[1] == "users":
            return WebFingerQuery("actor_url", username=name, actor_type="Person")
        if segments[1] == "groups":
            return WebFingerQuery("actor_url", username=name, actor_type="Group")
        if segments[1] == "g":  # a group's profile page
            return WebFingerQuery("actor_url", username=name, actor_type="Group")
    if len(segments) == 2 and segments[1].startswith("@") and _USERNAME.match(segments[1][1:]):
        return WebFingerQuery("actor_url", username=segments[1][1:], actor_type="Person")
    raise UnknownResource("resource: no such resource")


def webfinger_document(
    subject: str,
    actor_url: str,
    profile_url: str | None,
    *,
    actor_type: Literal["Person", "Group", "Application"] = "Person",
) -> JSON:
    """A JRD (RFC 7033 §4.4) for one actor.

    The ``self`` link is typed ``application/activity+json`` (what Mastodon looks for, §8.1
    item 1) and carries the ``https://www.w3.org/ns/activitystreams#type`` property (Lemmy
    practice, so consumers can tell a group from a person before fetching).
    """
    links: list[JSON] = []
    aliases = [actor_url]
    if profile_url:
        links.append({"rel": WEBFINGER_PROFILE_PAGE, "type": "text/html", "href": profile_url})
        aliases.append(profile_url)
    links.append(
        {
            "rel": "self",
            "type": ACTIVITY_JSON,
            "href": actor_url,
            "properties": {AS_TYPE_PROPERTY: actor_type},
        }
    )
    return {"subject": subject, "aliases": _unique(aliases), "links": links}


def instance_webfinger_document(base_url: str, domain: str) -> JSON:
    """The instance actor's JRD, for ``https://host/`` (FEP-d556) and ``acct:host@host``.

    Mastodon's shape (subject ``acct:host@host``, round-tripping with the actor's
    ``preferredUsername``, research/federation.md §8.1 item 1) plus FEP-d556's
    ``as#Service`` link relation.
    """
    actor = instance_actor_url(base_url)
    doc = webfinger_document(f"acct:{domain}@{domain}", actor, base_url.rstrip("/") + "/", actor_type="Application")
    doc["links"].append({"rel": "https://www.w3.org/ns/activitystreams#Service", "type": ACTIVITY_JSON, "href": actor})
    return doc


# ---------------------------------------------------------------------------- host-meta


def _lrdd_template(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/.well-known/webfinger?resource={{uri}}"


def host_meta_xml(base_url: str) -> str:
    """RFC 6415 host-meta (XRD) with the LRDD template: Mastodon's WebFinger fallback.

    Like Mastodon's, the link has no ``type``: consumers read the template only.
    """
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" template={quoteattr(_lrdd_template(base_url))}/>\n'
        "</XRD>\n"
    )


def host_meta_json(base_url: str) -> JSON:
    """The JSON form of host-meta (RFC 6415 appendix A)."""
    return {"links": [{"rel": "lrdd", "template": _lrdd_template(base_url)}]}


# ---------------------------------------------------------------------------- NodeInfo


def nodeinfo_links(base_url: str) -> JSON:
    """``/.well-known/nodeinfo``: both schema versions, and the instance actor (FEP-2677)."""
    base = base_url.rstrip("/")
    return {
        "links": [
            {"rel": NODEINFO_SCHEMA.format(version="2.0"), "href": f"{base}/nodeinfo/2.0"},
            {"rel": NODEINFO_SCHEMA.format(version="2.1"), "href": f"{base}/nodeinfo/2.1"},
            {"rel": "https://www.w3.org/ns/activitystreams#Application", "href": instance_actor_url(base)},
        ]
    }


def nodeinfo_content_type(version: NodeInfoVersion) -> str:
    return f'application/json; profile="{NODEINFO_SCHEMA.format(version=version)}#"'


def nodeinfo(
    version: NodeInfoVersion,
    *,
    software_version: str,
    open_registrations: bool,
    users_total: int,
    users_active_month: int,
    users_active_halfyear: int,
    local_posts: int,
    node_name: str,
    node_description: str,
    repository: str | None = None,
    homepage: str | None = None,
) -> JSON:
    """A NodeInfo 2.0 or 2.1 document (nodeinfo.diaspora.software schemas).

    2.1 adds ``software.repository`` and ``software.homepage``, written only when known.
    Counts must be non-negative integers (the schemas say ``minimum: 0``).
    """
    if version not in ("2.0", "2.1"):
        raise DocumentError(f"nodeinfo: unsupported version {version!r} (2.0 or 2.1)")
    for name, value in (
        ("users_total", users_total),
        ("users_active_month", users_active_month),
        ("users_active_halfyear", users_active_halfyear),
        ("local_posts", local_posts),
    ):
        if value < 0:
            raise DocumentError(f"nodeinfo: {name} must not be negative")
    software: JSON = {"name": SOFTWARE_NAME, "version": software_version}
    if version == "2.1":
        if repository:
            software["repository"] = repository
        if homepage:
            software["homepage"] = homepage
    return {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": open_registrations,
        "usage": {
            "users": {
                "total": users_total,
                "activeMonth": users_active_month,
                "activeHalfyear": users_active_halfyear,
            },
            "localPosts": local_posts,
        },
        "metadata": {"nodeName": node_name, "nodeDescription": node_description},
    }


# ---------------------------------------------------------------------------- actors


@dataclass(frozen=True, slots=True)
class ActorKeys:
    """The public halves of a local actor's two keys, as published in its document."""

    rsa_key_id: str
    rsa_public_pem: str
    ed25519_key_id: str
    ed25519_multibase: str  # FEP-521a "z..." (base58btc of 0xed01 + raw key)


@dataclass(frozen=True, slots=True)
class ActorProfile:
    """What an actor document says about its owner (already sanitized HTML in ``summary``).

    ``fields`` are ``(name, value_html)`` pairs, shown as ``PropertyValue`` attachments.
    """

    id: str
    username: str
    name: str
    summary: str
    url: str
    shared_inbox: str
    published: datetime | None = None
    icon_url: str | None = None
    image_url: str | None = None
    fields: Sequence[tuple[str, str]] = ()
    discoverable: bool = False
    manually_approves_followers: bool = False


def public_key(keys: ActorKeys, actor_id: str) -> JSON:
    """The single ``publicKey`` object (research/federation.md §8.1 item 4)."""
    return {"id": keys.rsa_key_id, "owner": actor_id, "publicKeyPem": keys.rsa_public_pem}


def multikey(keys: ActorKeys, actor_id: str) -> JSON:
    """The Ed25519 key as a FEP-521a ``Multikey`` verification method."""
    return {
        "id": keys.ed25519_key_id,
        "type": "Multikey",
        "controller": actor_id,
        "publicKeyMultibase": keys.ed25519_multibase,
    }


def _image(url: str) -> JSON:
    return {"type": "Image", "mediaType": "image/png", "url": url}


def _actor_base(actor_type: str, profile: ActorProfile, keys: ActorKeys, *, suspended: bool) -> JSON:
    urls = ActorUrls.of(profile.id)
    doc: JSON = {
        "@context": ACTOR_CONTEXT,
        "id": profile.id,
        "type": actor_type,
        "preferredUsername": profile.username,
        "inbox": urls.inbox,
        "outbox": urls.outbox,
        "followers": urls.followers,
        "following": urls.following,
        "endpoints": {"sharedInbox": profile.shared_inbox},
        "url": profile.url,
        "manuallyApprovesFollowers": profile.manually_approves_followers,
        "discoverable": False if suspended else profile.discoverable,
        "indexable": False,
        "publicKey": public_key(keys, profile.id),
        "assertionMethod": [multikey(keys, profile.id)],
    }
    if profile.published is not None:
        doc["published"] = format_time(profile.published)
    if suspended:
        # Mastodon's shape for a (reversibly) suspended account: identity and keys only, so
        # remote servers keep the account and can verify what it signed; no profile content.
        doc["name"] = ""
        doc["summary"] = ""
        doc["suspended"] = True
        return doc
    doc["name"] = profile.name
    doc["summary"] = profile.summary
    if profile.icon_url:
        doc["icon"] = _image(profile.icon_url)
    if profile.image_url:
        doc["image"] = _image(profile.image_url)
    doc["attachment"] = [{"type": "PropertyValue", "name": name, "value": value} for name, value in profile.fields]
    return doc


def person_document(
    profile: ActorProfile,
    keys: ActorKeys,
    *,
    bot: bool = False,
    verified_professional: bool = False,
    suspended: bool = False,
) -> JSON:
    """A member's actor: ``Person`` (``Service`` for bots, which Mastodon shows as automated)."""
    doc = _actor_base("Service" if bot else "Person", profile, keys, suspended=suspended)
    if not suspended:
        doc["verifiedProfessional"] = verified_professional
    return doc


def group_document(
    profile: ActorProfile,
    keys: ActorKeys,
    *,
    join_policy: str,
    members_only: bool,
    sensitive: bool = False,
    suspended: bool = False,
) -> JSON:
    """A group's actor (FEP-1b12 ``Group``; Lemmy community shape).

    ``attributedTo`` is the moderators collection (FEP-1b12 §Group moderation);
    ``manuallyApprovesFollowers`` is true unless anyone may join (Lemmy private communities,
    research/federation.md §2.4); posting is open to members, so
    ``postingRestrictedToMods`` is false.
    """
    approves = join_policy != "open" or members_only
    profile = ActorProfile(
        id=profile.id,
        username=profile.username,
        name=profile.name,
        summary=profile.summary,
        url=profile.url,
        shared_inbox=profile.shared_inbox,
        published=profile.published,
        icon_url=profile.icon_url,
        image_url=profile.image_url,
        fields=profile.fields,
        discoverable=profile.discoverable,
        manually_approves_followers=approves,
    )
    doc = _actor_base("Group", profile, keys, suspended=suspended)
    doc["attributedTo"] = ActorUrls.of(profile.id).moderators
    doc["postingRestrictedToMods"] = False
    doc["sensitive"] = sensitive
    doc["membersOnly"] = members_only
    doc["joinPolicy"] = join_policy
    return doc


def application_document(
    *,
    base_url: str,
    domain: str,
    name: str,
    summary: str,
    keys: ActorKeys,
) -> JSON:
    """The instance actor (FEP-2677): ``Application`` at ``{base}/actor``.

    It signs the instance's fetches and reports; it is always fetchable unsigned
    (research/federation.md §8.2 item 10) and follows nobody on its own, hence
    ``manuallyApprovesFollowers``.
    """
    base = base_url.rstrip("/")
    actor_id = instance_actor_url(base)
    urls = ActorUrls.of(actor_id)
    return {
        "@context": ACTOR_CONTEXT,
        "id": actor_id,
        "type": "Application",
        "preferredUsername": domain,
        "name": name,
        "summary": summary,
        "url": base + "/",
        "inbox": urls.inbox,
        "outbox": urls.outbox,
        "endpoints": {"sharedInbox": shared_inbox_url(base)},
        "manuallyApprovesFollowers": True,
        "discoverable": False,
        "indexable": False,
        "publicKey": public_key(keys, actor_id),
        "assertionMethod": [multikey(keys, actor_id)],
    }


# ---------------------------------------------------------------------------- notes


def addressing(
    visibility: str,
    *,
    author_followers: str,
    group: str | None = None,
    group_followers: str | None = None,
    group_members_only: bool = False,
    mentions: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """``(to, cc)`` for a post, by visibility and group (research/federation.md §2.5, §2.4).

    ========================  =================================  ===============================
    case                      to                                 cc
    ========================  =================================  ===============================
    public                    Public                             author followers, mentions
    unlisted                  author followers                   Public, mentions
    private                   author followers, mentions         —
    public, in a group        group, Public                      author followers, mentions
    unlisted, in a group      group                              Public, author followers, mentions
    private, in a group       group, group followers, mentions   —
    members-only group (any)  group, group followers             —
    ========================  =================================  ===============================

    A members-only group's post is never addressed to Public, nor to anyone outside the
    group: mentioned members receive it as members (Lemmy private communities, §2.4).
    """
    if visibility == "direct":
        raise DocumentError("addressing: direct messages are end-to-end encrypted, never plain Notes")
    if visibility not in ("public", "unlisted", "private"):
        raise DocumentError(f"addressing: unknown visibility {visibility!r}")
    mentioned = list(mentions)
    if group is not None:
        if group_followers is None:
            raise DocumentError("addressing: a group post needs the group's followers collection")
        if group_members_only:
            return [group, group_followers], []
        if visibility == "public":
            return [group, PUBLIC], _unique([author_followers, *mentioned])
        if visibility == "unlisted":
            return [group], _unique([PUBLIC, author_followers, *mentioned])
        return _unique([group, group_followers, *mentioned]), []
    if visibility == "public":
        return [PUBLIC], _unique([author_followers, *mentioned])
    if visibility == "unlisted":
        return [author_followers], _unique([PUBLIC, *mentioned])
    return _unique([author_followers, *mentioned]), []


@dataclass(frozen=True, slots=True)
class MentionTag:
    href: str  # the mentioned actor's id
    name: str  # "@user@host"

    def as_json(self) -> JSON:
        return {"type": "Mention", "href": self.href, "name": self.name}


@dataclass(frozen=True, slots=True)
class HashtagTag:
    href: str  # the tag's page
    name: str  # "#tag" (the leading # is added when missing)

    def as_json(self) -> JSON:
        name = self.name if self.name.startswith("#") else "#" + self.name
        return {"type": "Hashtag", "href": self.href, "name": name}


def note_document(
    *,
    id: str,
    attributed_to: str,
    content: str,
    published: datetime,
    to: Sequence[str],
    cc: Sequence[str],
    url: str | None = None,
    source: str | None = None,
    language: str | None = None,
    summary: str | None = None,
    sensitive: bool = False,
    updated: datetime | None = None,
    in_reply_to: str | None = None,
    tags: Sequence[MentionTag | HashtagTag] = (),
    audience: str | None = None,
    topics: Sequence[str] = (),
) -> JSON:
    """A post as a ``Note`` (Mastodon's object shape, research/federation.md §2.5).

    ``topics``: trigger topic ids, sent as ``hearthside:topics`` (the caller also names them
    in ``summary``, the content warning other software shows).

    ``content`` is the sanitized HTML; ``source`` the Markdown as written
    (``mediaType: text/markdown``); ``summary`` the content warning, with ``sensitive`` set
    whenever there is one; ``audience`` the group a post was made in (FEP-1b12).
    """
    doc: JSON = {
        "@context": OBJECT_CONTEXT,
        "id": id,
        "type": "Note",
        "attributedTo": attributed_to,
        "content": content,
    }
    if language:
        doc["contentMap"] = {language: content}
    if source is not None:
        doc["source"] = {"content": source, "mediaType": "text/markdown"}
    if summary:
        doc["summary"] = summary
    doc["sensitive"] = bool(sensitive or (summary and summary.strip()))
    doc["published"] = format_time(published)
    if updated is not None:
        doc["updated"] = format_time(updated)
    doc["inReplyTo"] = in_reply_to
    if url:
        doc["url"] = url
    doc["to"] = list(to)
    doc["cc"] = list(cc)
    doc["tag"] = [tag.as_json() for tag in tags]
    if audience:
        doc["audience"] = audience
    if topics:
        doc["hearthside:topics"] = list(topics)
    return doc


def tombstone(id: str, former_type: str, deleted: datetime | None = None) -> JSON:
    """What a deleted object's URL answers, with ``410 Gone`` (research/federation.md §8.2 item 9)."""
    doc: JSON = {"@context": AS_CONTEXT, "id": id, "type": "Tombstone", "formerType": former_type}
    if deleted is not None:
        doc["deleted"] = format_time(deleted)
    return doc


# ---------------------------------------------------------------------------- collections


def ordered_collection(
    id: str,
    total: int,
    first: str | None = None,
    last: str | None = None,
    *,
    items: Sequence[Any] | None = None,
) -> JSON:
    """An ``OrderedCollection``: counted only, paged (``first``/``last``) or inline (``items``)."""
    doc: JSON = {"@context": AS_CONTEXT, "id": id, "type": "OrderedCollection", "totalItems": total}
    if first is not None:
        doc["first"] = first
    if last is not None:
        doc["last"] = last
    if items is not None:
        doc["orderedItems"] = [_without_context(i) if isinstance(i, Mapping) else i for i in items]
    return doc


def ordered_collection_page(
    id: str,
    part_of: str,
    items: Sequence[Any],
    next: str | None = None,
    prev: str | None = None,
) -> JSON:
    """One ``OrderedCollectionPage``; embedded items lose their own ``@context``."""
    doc: JSON = {
        "@context": OBJECT_CONTEXT,
        "id": id,
        "type": "OrderedCollectionPage",
        "partOf": part_of,
        "orderedItems": [_without_context(i) if isinstance(i, Mapping) else i for i in items],
    }
    if next is not None:
        doc["next"] = next
    if prev is not None:
        doc["prev"] = prev
    return doc


# ---------------------------------------------------------------------------- activities


def _activity(
    kind: str,
    activity_id: str,
    actor: str,
    obj: Mapping[str, Any] | str,
    *,
    to: Sequence[str] | None = None,
    cc: Sequence[str] | None = None,
    published: datetime | None = None,
    audience: str | None = None,
    embed_unchanged: bool = False,
) -> JSON:
    doc: JSON = {"@context": OBJECT_CONTEXT, "id": activity_id, "type": kind, "actor": actor}
    if published is not None:
        doc["published"] = format_time(published)
    if to is not None:
        doc["to"] = list(to)
    if cc is not None:
        doc["cc"] = list(cc)
    if isinstance(obj, Mapping):
        doc["object"] = dict(obj) if embed_unchanged else _without_context(obj)
        found = obj.get("audience")
        if audience is None and isinstance(found, str):
            audience = found
    else:
        doc["object"] = obj
    if audience is not None:
        doc["audience"] = audience
    return doc


def create_activity(
    activity_id: str,
    actor: str,
    obj: Mapping[str, Any],
    to: Sequence[str],
    cc: Sequence[str],
    published: datetime,
) -> JSON:
    """``Create`` of ``obj`` (embedded, its ``audience`` copied to the activity)."""
    return _activity("Create", activity_id, actor, obj, to=to, cc=cc, published=published)


def update_activity(
    activity_id: str,
    actor: str,
    obj: Mapping[str, Any],
    to: Sequence[str],
    cc: Sequence[str],
    published: datetime,
) -> JSON:
    """``Update`` of an object (an edited post, with ``updated``) or of an actor (profile, keys)."""
    return _activity("Update", activity_id, actor, obj, to=to, cc=cc, published=published)


def delete_activity(
    activity_id: str,
    actor: str,
    object_id: str,
    to: Sequence[str],
    cc: Sequence[str],
    *,
    audience: str | None = None,
    published: datetime | None = None,
) -> JSON:
    """``Delete`` with a ``Tombstone`` object; for an actor deleting itself give its own id."""
    obj: JSON | str = object_id if object_id == actor else {"id": object_id, "type": "Tombstone"}
    return _activity("Delete", activity_id, actor, obj, to=to, cc=cc, audience=audience, published=published)


def announce_activity(
    activity_id: str,
    group_or_actor: str,
    inner: Mapping[str, Any] | str,
    to: Sequence[str],
    cc: Sequence[str],
    published: datetime,
) -> JSON:
    """``Announce`` of an activity or object, embedded exactly as given (FEP-1b12: a group
    redistributes what it received unchanged, so proofs on it still verify)."""
    return _activity(
        "Announce", activity_id, group_or_actor, inner, to=to, cc=cc, published=published, embed_unchanged=True
    )


def follow_activity(activity_id: str, actor: str, object_id: str) -> JSON:
    """``Follow`` (joining a group is following it, FEP-1b12); addressed to its object."""
    return _activity("Follow", activity_id, actor, object_id, to=[object_id])


def _reply_to_follow(kind: str, activity_id: str, actor: str, follow: Mapping[str, Any]) -> JSON:
    follower = follow.get("actor")
    if not isinstance(follower, str):
        raise DocumentError(f"{kind.lower()}_activity: the Follow has no actor id")
    return _activity(kind, activity_id, actor, follow, to=[follower])


def accept_activity(activity_id: str, actor: str, follow: Mapping[str, Any]) -> JSON:
    """``Accept`` embedding the ``Follow`` (Lemmy requires the object, not only its id)."""
    return _reply_to_follow("Accept", activity_id, actor, follow)


def reject_activity(activity_id: str, actor: str, follow: Mapping[str, Any]) -> JSON:
    """``Reject`` embedding the ``Follow`` (a refused membership request, Lemmy §2.3)."""
    return _reply_to_follow("Reject", activity_id, actor, follow)


def undo_activity(
    activity_id: str,
    actor: str,
    inner: Mapping[str, Any],
    *,
    to: Sequence[str] | None = None,
    cc: Sequence[str] | None = None,
) -> JSON:
    """``Undo`` embedding the undone activity; addressed as it was unless told otherwise."""
    inner_to = inner.get("to")
    inner_cc = inner.get("cc")
    return _activity(
        "Undo",
        activity_id,
        actor,
        inner,
        to=to if to is not None else (list(inner_to) if isinstance(inner_to, list) else None),
        cc=cc if cc is not None else (list(inner_cc) if isinstance(inner_cc, list) else None),
    )


def like_activity(
    activity_id: str, actor: str, object_id: str, *, to: Sequence[str] | None = None, audience: str | None = None
) -> JSON:
    """``Like`` (a favourite; Lemmy's upvote)."""
    return _activity("Like", activity_id, actor, object_id, to=to, audience=audience)


def block_activity(
    activity_id: str,
    actor: str,
    object_id: str,
    *,
    target: str | None = None,
    to: Sequence[str] | None = None,
) -> JSON:
    """``Block`` of an actor; with ``target`` (a group) it is a group ban, Lemmy's shape."""
    doc = _activity("Block", activity_id, actor, object_id, to=to if to is not None else [object_id])
    if target is not None:
        doc["target"] = target
    return doc


def flag_activity(activity_id: str, actor: str, objects: Sequence[str], content: str) -> JSON:
    """``Flag`` (a report), sent by the instance actor so the reporter stays anonymous
    (Mastodon, GoToSocial: research/federation.md §2.8); ``objects`` = account then posts."""
    if not objects:
        raise DocumentError("flag_activity: name at least the reported account")
    doc = _activity("Flag", activity_id, actor, objects[0], to=[objects[0]])
    doc["object"] = list(objects)
    doc["content"] = content
    return doc


# ---------------------------------------------------------------------------- negotiation


_AP_TYPES = ("application/activity+json", "application/ld+json", "application/json")


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        ranges.append((media, q))
    return ranges


def prefers_html(accept: str | None) -> bool:
    """Whether a request's ``Accept`` prefers HTML over ActivityStreams JSON (§8.2 item 6).

    ActivityPub JSON is served for ``application/activity+json``, ``application/ld+json``
    (with or without the AS profile) and ``application/json``, and when nothing is preferred
    (no header, ``*/*``). HTML only when ``text/html`` ranks strictly higher, as browsers ask.
    """
    if not accept:
        return False
    ranges = _media_ranges(accept)
    ap = max((q for media, q in ranges if media in _AP_TYPES), default=0.0)
    html = max((q for media, q in ranges if media in ("text/html", "application/xhtml+xml")), default=0.0)
    return html > ap
