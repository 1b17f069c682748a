"""Subscription merge: many feeds' opinions about an entity become one local decision, or none.

How it works (research/moderation.md §6.b "Merge algorithm", recomputed on every sync). The
caller hands :func:`merge` every subscription's *current* :class:`Opinion` per entity (the
latest non-retracted entry of each feed; a ``Retraction`` or ``Tombstone`` simply means the
opinion is absent), the :class:`Subscription` settings, the :class:`Thresholds` and the
:class:`LocalState`. For each entity that has an opinion or a subscription-managed decision:

1. Normalise: ``domain``, ``emailDomain``, ``ipRange`` and ``hashtag`` keys are lower-cased
   (a domain also loses its trailing dot); other keys (actor URIs) are taken as given, because
   URI paths are case-sensitive. Proper IDNA normalisation is the parsers' job.
2. Current opinion per subscription: expired (``expires <= now``) means no opinion; so does an
   entity kind outside the subscription's ``allowed_entity_kinds`` or, when the subscription
   has ``allowed_labels``, an opinion carrying none of them.
3. Cap: each opinion is capped at its own subscription's ``max_policy`` *before* counting, as
   FediBlockHole applies ``max_severity`` per source. (§6.b step 4 says "then apply the cap"
   after choosing, but a result has several sources and the cap belongs to one of them; capping
   afterwards would let a capped source's ``drop`` vote push another source's ``drop`` over the
   threshold.) A blocking opinion capped below ``filter`` becomes no opinion, never an
   ``accept``: a cap limits what a source may do, it does not turn its block into an allow.
4. Independence: supporters are collapsed into origins. Subscriptions sharing an
   ``independence_group`` or a ``feed_id`` are one origin; per entity a union-find also joins
   votes whose ``derived_from`` names another supporter's entry id, subscription id or
   ``feed_id``, votes carrying the same entry id (a mirror serving entries verbatim), and votes
   sharing a ``derived_from`` reference (copies of one upstream entry or feed, even one we do
   not subscribe to). Each origin counts once, with the largest weight among its members that
   support the level being counted; ``Supporter.counted`` marks the one that was counted.
5. Quorum per level, ``drop > reject > filter > accept``: ``support(L)`` is the sum over origins
   of that weight for members recommending ``L`` or stricter; the strictest blocking level whose
   support meets its threshold wins. ``accept`` is special (a departure from the "≥ L" wording):
   only ``accept`` opinions support it and it is chosen only when no blocking level met its
   threshold, otherwise one ``drop`` below quorum (test 11, "no action") would become an allow.
   Percentage thresholds (FediBlockHole ``pct``) compare with the total weight of the origins
   of all subscriptions admitting the entity kind, whether they have an opinion or not.
6. Filters are the union over the sources supporting the chosen level (fail-safe); labels the
   union over the same sources. The owner is the highest-``priority`` supporter (ties: smallest
   subscription id), so ownership passes down the list when the owner drops out (GoToSocial).
7. Local precedence: a local allow or exclude covering the entity (domains: the domain or any
   parent) wins over everything; an exact manual decision comes next; a manual decision on a
   parent domain lets through only a strictly stricter subdomain result (Mastodon picks the most
   specific rule, so a milder managed subdomain rule would weaken the manual one). Manual
   decisions themselves are never changed or removed; at most a subscription-managed decision
   on the same entity is orphaned.
8. Safeguards. Follow protection: when members follow accounts on the domain or a subdomain
   (``followed_domains``; for an actor entity, the actor in ``followed_actors``), a result that
   would newly raise enforcement above ``filter`` is capped at ``filter`` (or the current
   policy, if stricter), becomes a draft and asks for review (``follows``). Pins:
   ``never_auto_apply`` makes every change a draft; ``never_auto_retract`` turns a removal or
   downgrade into a ``keep`` with a ``pinned`` review notice. Drafts: a change is a draft when
   its owner is in draft mode or the auto-mode sources alone do not meet the threshold (a draft
   subscription's vote never applies anything by itself); a removal or downgrade is a draft
   when the previous owner is in draft mode. The circuit breaker (:func:`circuit_breaker`)
   finally turns every change of the sync into a draft when too many would apply at once.

Retraction: a managed decision that no longer meets quorum is removed or orphaned per its
previous owner's ``retraction_mode`` (orphaned: still enforced, no longer managed); if quorum is
still met the decision stays and ownership moves. A local allow removes a managed decision; a
local exclude or an exact manual decision orphans it (it is no longer the subscriptions'
business, but nothing is loosened behind the moderator's back). For legacy lists, absence on two
consecutive successful fetches is a retraction: :func:`implicit_retractions`.

What it guarantees: the result depends only on the inputs (no clock, no randomness, no input
order); changes are sorted by entity and every reason list is in a fixed order. Cost is linear
in opinions plus managed decisions: dictionaries by entity, local domain rules looked up by
walking the key's suffixes (one set probe per label), never scanning a list. Entities whose
result equals their managed decision produce no change and build no objects. The cyclic
garbage collector is paused during a merge and what the merge made is then promoted to the
oldest generation (:func:`_cyclic_gc_paused`): nothing here makes reference cycles, and
letting the collector walk a large merge's objects cost a third of the time.

Two paths, one result: :func:`merge` takes the fast path (section "the fast path": opinions
bucketed per subscription run with C-level iterators, new decisions on entities no local state
touches built directly); anything unusual falls back to the general per-entity step
(:func:`_decide`). :func:`_merge_reference` runs the straightforward path only and is kept for
the tests, which require equal results on randomised workloads.

What it refuses (:class:`MergeInputError`, message naming the field): a subscription or
threshold value out of range, an opinion from an unknown subscription, two opinions from one
subscription about one entity, and naive datetimes.
"""

from __future__ import annotations

import contextlib
import enum
import gc
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from itertools import chain, compress, groupby, repeat
from operator import attrgetter
from typing import Any, NamedTuple, cast

__all__ = [
    "DEFAULT_MAX_CHANGES",
    "DEFAULT_MAX_FRACTION",
    "DEFAULT_MIN_CHANGES",
    "Action",
    "Change",
    "Entity",
    "LocalState",
    "ManagedDecision",
    "MergeInputError",
    "MergeResult",
    "Mode",
    "Opinion",
    "Policy",
    "Reason",
    "RetractionMode",
    "Review",
    "Subscription",
    "Supporter",
    "ThresholdUnit",
    "Thresholds",
    "apply_circuit_breaker",
    "circuit_breaker",
    "implicit_retractions",
    "merge",
]

#: Circuit breaker defaults (research/moderation.md §6.b step 7: 25 entries / 10 %).
DEFAULT_MAX_CHANGES = 25
DEFAULT_MAX_FRACTION = 0.10
#: A sync applying at most this many changes never trips the percentage rule (see circuit_breaker).
DEFAULT_MIN_CHANGES = 5


class MergeInputError(ValueError):
    """Inputs to the merge are inconsistent or out of range; the message names the field."""


# ---------------------------------------------------------------------------- vocabulary


class Policy(enum.StrEnum):
    """FIRES ``recommendedPolicy`` values, ordered ``accept`` < ``filter`` < ``reject`` < ``drop``."""

    ACCEPT = "accept"
    FILTER = "filter"
    REJECT = "reject"
    DROP = "drop"

    @property
    def rank(self) -> int:
        """0 for ``accept`` up to 3 for ``drop``."""
        return _RANK[self]


_RANK: dict[str, int] = {Policy.ACCEPT: 0, Policy.FILTER: 1, Policy.REJECT: 2, Policy.DROP: 3}
_BY_RANK: tuple[Policy, ...] = (Policy.ACCEPT, Policy.FILTER, Policy.REJECT, Policy.DROP)
_ACCEPT, _FILTER = 0, 1
_EMPTY: frozenset[str] = frozenset()
_BLOCKING_RANKS = (3, 2, 1)  # strictest first


class Mode(enum.StrEnum):
    """``draft``: changes wait for a moderator (the default); ``auto``: changes apply."""

    DRAFT = "draft"
    AUTO = "auto"


class RetractionMode(enum.StrEnum):
    """What happens to a managed decision that loses its support (GoToSocial)."""

    REMOVE = "remove"  # deleted: federation resumes
    ORPHAN = "orphan"  # kept and enforced, no longer managed by any subscription


class ThresholdUnit(enum.StrEnum):
    COUNT = "count"  # thresholds are summed trust weights
    PERCENT = "pct"  # thresholds are percentages of the total weight (FediBlockHole ``pct``)


class Action(enum.StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"
    ORPHAN = "orphan"
    KEEP = "keep"  # nothing enforced changes; ownership moved or a pin held (worth an audit line)


class Reason(enum.StrEnum):
    """Codes for the audit log. A ``str`` enum, so ``"threshold" in change.reasons`` works."""

    THRESHOLD = "threshold"  # quorum met at the chosen level
    BELOW_THRESHOLD = "below_threshold"  # quorum lost while the owner still has an opinion
    CAP = "cap"  # some opinion was capped by its subscription's max_policy
    INDEPENDENCE = "independence"  # copies were collapsed into one origin
    EXPIRED = "expired"  # some opinion has expired
    RETRACTED = "retracted"  # the previous owner no longer has an opinion
    OWNER_CHANGED = "owner_changed"
    OWNER_GONE = "owner_gone"  # the previous owner is no longer subscribed
    LOCAL_ALLOW = "local_allow"
    LOCAL_EXCLUDE = "local_exclude"
    MANUAL = "manual"
    FOLLOW_PROTECTION = "follow_protection"
    PINNED = "pinned"
    DRAFT_MODE = "draft_mode"
    CIRCUIT_BREAKER = "circuit_breaker"


_REASON_ORDER = {reason: index for index, reason in enumerate(Reason)}


class Review(enum.StrEnum):
    """Why a change needs a moderator's attention (a notice), beyond being a draft."""

    FOLLOWS = "follows"  # members follow accounts the decision would cut off
    PINNED = "pinned"  # a pin held the decision against a retraction or downgrade


class Entity(NamedTuple):
    """What a decision is about: ``kind`` (``domain``, ``actor``, …) and its normalised ``key``."""

    kind: str
    key: str


class Supporter(NamedTuple):
    """One subscription's current opinion on an entity, as the change records it.

    ``counted`` is true for the one source per independent origin whose weight was counted at
    the chosen level; ``policy`` is the opinion after its subscription's cap.
    """

    subscription_id: str
    entry_id: str
    counted: bool
    policy: Policy


# ---------------------------------------------------------------------------- inputs


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise MergeInputError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MergeInputError(f"{name}: a timezone-aware datetime is required, got a naive one")


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _strings(value: object, name: str) -> frozenset[str]:
    """A frozenset of strings (a set, list or tuple of strings is accepted and converted)."""
    if type(value) is frozenset and all(isinstance(item, str) for item in value):
        return value
    _require(
        isinstance(value, set | frozenset | list | tuple) and all(isinstance(item, str) for item in value),
        f"{name}: a set of strings is required, got {value!r}",
    )
    return frozenset(cast("Iterable[str]", value))


def _policy(value: object, name: str) -> Policy:
    try:
        if isinstance(value, str):
            return Policy(value)
    except ValueError:
        pass
    raise MergeInputError(f"{name}: one of accept, filter, reject, drop is required, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """How much one subscribed feed is trusted and what it may do (§6.b "Subscription configuration").

    ``allowed_entity_kinds`` defaults to domains only: account-level entries are for partner
    feeds and must be admitted explicitly. ``allowed_labels`` (``None``: any) admits only
    opinions carrying at least one of them. ``priority`` is GoToSocial's: higher owns.
    ``feed_id`` is the feed's URI, which other feeds' ``derived_from`` may name.
    """

    id: str
    trust_weight: int = 1
    mode: Mode = Mode.DRAFT
    max_policy: Policy = Policy.DROP
    allowed_entity_kinds: frozenset[str] = frozenset({"domain"})
    allowed_labels: frozenset[str] | None = None
    priority: int = 0
    retraction_mode: RetractionMode = RetractionMode.REMOVE
    independence_group: str | None = None
    feed_id: str | None = None

    def __post_init__(self) -> None:
        _require(_text(self.id), f"subscription id: a non-empty string is required, got {self.id!r}")
        where = f"subscription {self.id!r}"
        _require(
            _is_int(self.trust_weight) and self.trust_weight >= 1,
            f"{where} trust_weight: an integer >= 1 is required, got {self.trust_weight!r}",
        )
        _require(_is_int(self.priority), f"{where} priority: an integer is required, got {self.priority!r}")
        try:
            object.__setattr__(self, "mode", Mode(self.mode))
        except (ValueError, TypeError):
            raise MergeInputError(f"{where} mode: 'draft' or 'auto' is required, got {self.mode!r}") from None
        try:
            object.__setattr__(self, "retraction_mode", RetractionMode(self.retraction_mode))
        except (ValueError, TypeError):
            raise MergeInputError(
                f"{where} retraction_mode: 'remove' or 'orphan' is required, got {self.retraction_mode!r}"
            ) from None
        object.__setattr__(self, "max_policy", _policy(self.max_policy, f"{where} max_policy"))
        kinds = _strings(self.allowed_entity_kinds, f"{where} allowed_entity_kinds")
        object.__setattr__(self, "allowed_entity_kinds", kinds)
        if self.allowed_labels is not None:
            object.__setattr__(self, "allowed_labels", _strings(self.allowed_labels, f"{where} allowed_labels"))
        for name in ("independence_group", "feed_id"):
            value = getattr(self, name)
            _require(value is None or _text(value), f"{where} {name}: a non-empty string or None is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class Opinion:
    """A subscription's current recommendation about one entity (one non-retracted feed entry).

    ``derived_from`` lists the upstream entry ids or feed URIs the entry was copied or aggregated
    from (empty: an original judgement). ``expires`` (aware) makes the opinion inert from then on.
    """

    subscription_id: str
    entity_kind: str
    entity_key: str
    policy: Policy
    entry_id: str
    filters: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    derived_from: tuple[str, ...] = ()
    expires: datetime | None = None

    def __post_init__(self) -> None:
        _require(_text(self.entry_id), f"opinion entry_id: a non-empty string is required, got {self.entry_id!r}")
        where = f"opinion {self.entry_id!r}"
        for name in ("subscription_id", "entity_kind", "entity_key"):
            value = getattr(self, name)
            _require(_text(value), f"{where} {name}: a non-empty string is required, got {value!r}")
        normal = _normal_key(self.entity_kind, self.entity_key)
        _require(bool(normal), f"{where} entity_key: empty once normalised")
        object.__setattr__(self, "entity_key", normal)
        object.__setattr__(self, "policy", _policy(self.policy, f"{where} policy"))
        for name in ("filters", "labels"):
            object.__setattr__(self, name, _strings(getattr(self, name), f"{where} {name}"))
        if type(self.derived_from) is not tuple or not all(_text(ref) for ref in self.derived_from):
            _require(
                isinstance(self.derived_from, list | tuple) and all(_text(ref) for ref in self.derived_from),
                f"{where} derived_from: a tuple of non-empty strings is required",
            )
            object.__setattr__(self, "derived_from", tuple(self.derived_from))
        if self.expires is not None:
            _require(isinstance(self.expires, datetime), f"{where} expires: a datetime or None is required")
            _aware(self.expires, f"{where} expires")


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """Support needed per level: summed trust weights (``count``) or a percentage (``pct``).

    Defaults are §6.b's: drop 3, reject 3, filter 2, accept 1.
    """

    drop: float = 3
    reject: float = 3
    filter: float = 2
    accept: float = 1
    unit: ThresholdUnit = ThresholdUnit.COUNT

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "unit", ThresholdUnit(self.unit))
        except ValueError:
            raise MergeInputError(f"thresholds unit: 'count' or 'pct' is required, got {self.unit!r}") from None
        for name in ("drop", "reject", "filter", "accept"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if self.unit is ThresholdUnit.COUNT:
                _require(
                    number and value >= 1 and float(value).is_integer(),
                    f"thresholds {name}: a whole weight >= 1 is required, got {value!r}",
                )
            else:
                _require(
                    number and 0 < value <= 100,
                    f"thresholds {name}: a percentage in (0, 100] is required, got {value!r}",
                )

    def by_rank(self) -> tuple[float, float, float, float]:
        """The four thresholds indexed by policy rank (accept first)."""
        return (self.accept, self.filter, self.reject, self.drop)


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagedDecision:
    """A decision a subscription currently manages (as left by the previous sync)."""

    policy: Policy
    owner: str
    filters: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _require(_text(self.owner), f"managed decision owner: a non-empty string is required, got {self.owner!r}")
        where = f"managed decision of {self.owner!r}"
        object.__setattr__(self, "policy", _policy(self.policy, f"{where} policy"))
        for name in ("filters", "labels"):
            object.__setattr__(self, name, _strings(getattr(self, name), f"{where} {name}"))


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalState:
    """What the instance decided itself, and what the subscriptions manage now.

    ``allows`` and ``excludes`` are domains and cover their subdomains. ``manual`` maps entities
    to the policy of a moderator's own decision (for domains a parent's manual decision also
    limits subdomain results, see the module note). Pins are exact entities. ``followed_domains``
    are domains where members follow or are followed by accounts; ``followed_actors`` the same
    per actor URI.
    """

    allows: frozenset[str] = frozenset()
    excludes: frozenset[str] = frozenset()
    manual: Mapping[Entity, Policy] = field(default_factory=dict)
    never_auto_retract: frozenset[Entity] = frozenset()
    never_auto_apply: frozenset[Entity] = frozenset()
    followed_domains: frozenset[str] = frozenset()
    followed_actors: frozenset[str] = frozenset()
    managed: Mapping[Entity, ManagedDecision] = field(default_factory=dict)


# ---------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What one sync does to one entity, with its provenance.

    ``policy``/``filters``/``labels``/``owner`` describe the entity after the change: ``None``
    policy for ``remove``; for ``orphan`` the still-enforced policy with no owner.
    ``merged_policy`` is the quorum result before local precedence and safeguards (what the
    feeds asked for). ``review`` holds notices for moderators; ``affects_follows`` says members'
    follows would be cut by the merged policy.
    """

    entity: Entity
    action: Action
    policy: Policy | None
    filters: frozenset[str]
    labels: frozenset[str]
    owner: str | None
    previous_policy: Policy | None
    previous_owner: str | None
    merged_policy: Policy | None
    supporters: tuple[Supporter, ...]
    draft: bool
    reasons: tuple[Reason, ...]
    review: tuple[Review, ...] = ()
    affects_follows: bool = False

    @property
    def needs_review(self) -> bool:
        return bool(self.review)


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The changes of one sync (sorted by entity) and whether the circuit breaker tripped."""

    changes: tuple[Change, ...]
    circuit_breaker: bool
    managed_count: int

    def for_entity(self, kind: str, key: str) -> Change | None:
        """The change for one entity (keys as normalised by the merge), or ``None``."""
        wanted = Entity(kind, key)
        for change in self.changes:
            if change.entity == wanted:
                return change
        return None

    @property
    def applied(self) -> tuple[Change, ...]:
        """Changes that take effect without a moderator (not drafts, not keeps)."""
        return tuple(c for c in self.changes if not c.draft and c.action is not Action.KEEP)

    @property
    def drafts(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.draft)

    @property
    def notices(self) -> tuple[Change, ...]:
        """Changes moderators must be told about (follow protection, held pins)."""
        return tuple(c for c in self.changes if c.review)


# ---------------------------------------------------------------------------- keys and domains

_LOWERED_KINDS = frozenset({"domain", "emailDomain", "ipRange", "hashtag"})


def _normal_key(kind: str, key: str) -> str:
    if kind == "domain":
        return key.lower().rstrip(".")
    if kind in _LOWERED_KINDS:
        return key.lower()
    return key


def _normal_domains(domains: Iterable[str]) -> frozenset[str]:
    return frozenset(d.lower().rstrip(".") for d in domains)


def _is_ip_literal(key: str) -> bool:
    # A TLD is never all digits, so a last label of digits means an IPv4 literal.
    return ":" in key or key.rpartition(".")[2].isdigit()


def _suffixes(domain: str) -> list[str]:
    """The domain and each parent on label boundaries, most specific first."""
    if _is_ip_literal(domain):
        return [domain]
    out = [domain]
    start = domain.find(".")
    while start != -1:
        out.append(domain[start + 1 :])
        start = domain.find(".", start + 1)
    return out


# ---------------------------------------------------------------------------- per-entity work
#
# The reference path (see also "the fast path" below, which merge() takes). The opinions are
# walked once into per-entity lists of plain ``(rank, subscription, opinion)`` tuples, kept in
# subscription-id order; each entity is then decided by one function over its list. Objects
# are built only for entities that change, so a steady-state sync mostly ends at the comparison
# with the managed decision. Independence needs work only when two votes may share an origin
# (a shared group or feed id, a ``derived_from``, a repeated entry id).


class _Sub:
    """A subscription flattened for the hot loop (see :func:`_link_subscriptions`)."""

    __slots__ = (
        "auto",
        "bit",
        "cap",
        "id",
        "kinds",
        "labels",
        "origin",
        "preference",
        "priority",
        "shared",
        "sub",
        "tokens",
        "weight",
    )

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.id = sub.id
        self.weight = sub.trust_weight
        self.cap = _RANK[sub.max_policy]
        self.kinds = sub.allowed_entity_kinds
        self.labels = sub.allowed_labels
        self.priority = sub.priority
        self.auto = sub.mode is Mode.AUTO
        self.bit = 0  # 1 << position by id: duplicate detection and order
        self.origin = sub.id  # subscriptions sharing a group or feed id share this
        self.tokens: tuple[str, ...] = ()  # what another entry's derived_from may name
        self.shared: tuple[str, ...] = ()  # those of the tokens another subscription holds too
        self.preference = 0  # position by (largest weight, highest priority, smallest id)


def _link_subscriptions(ordered: list[_Sub]) -> list[int]:
    """Number the subscriptions (sorted by id) and join those sharing a group or a feed id.

    Returns one bit mask per origin that has several subscriptions.
    """
    parent = {sub.id: sub.id for sub in ordered}

    def find(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    first_with: dict[str, str] = {}
    for position, sub in enumerate(ordered):
        sub.bit = 1 << position
        group = sub.sub.independence_group
        for token in (sub.sub.feed_id, "\x00group:" + group if group else None):
            if token:
                a, b = find(sub.id), find(first_with.setdefault(token, sub.id))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    masks: dict[str, int] = {}
    for sub in ordered:
        sub.origin = find(sub.id)
        masks[sub.origin] = masks.get(sub.origin, 0) | sub.bit
        feed = (sub.sub.feed_id,) if sub.sub.feed_id else ()
        sub.tokens = (sub.id, *feed, "\x00origin:" + sub.origin)
    return [mask for mask in masks.values() if mask & (mask - 1)]


# One admitted opinion: (rank after its subscription's cap, the subscription, the opinion).
_Vote = tuple[int, _Sub, Opinion]


def _cumulative(sums: list[int]) -> list[int]:
    """Weights by exact rank to support: accept alone, blocking ranks ``>= L``."""
    reject = sums[3] + sums[2]
    return [sums[0], reject + sums[1], reject, sums[3]]


def _add_origin(support: list[int], members: Iterable[_Vote], auto_only: bool) -> None:
    """Add one origin's support: per level, its largest weight among members supporting it."""
    best = [0, 0, 0, 0]
    for rank, sub, _ in members:
        if (sub.auto or not auto_only) and sub.weight > best[rank]:
            best[rank] = sub.weight
    support[_ACCEPT] += best[_ACCEPT]
    running = best[3]
    support[3] += running
    if best[2] > running:
        running = best[2]
    support[2] += running
    if best[1] > running:
        running = best[1]
    support[1] += running


def _support(votes: list[_Vote], collapsed: list[list[_Vote]], auto_only: bool) -> list[int]:
    """Support per rank when some votes share an origin (``collapsed``: groups of 2 or more)."""
    grouped = {id(vote) for members in collapsed for vote in members}
    sums = [0, 0, 0, 0]
    for vote in votes:
        if id(vote) not in grouped and (vote[1].auto or not auto_only):
            sums[vote[0]] += vote[1].weight
    support = _cumulative(sums)
    for members in collapsed:
        _add_origin(support, members, auto_only)
    return support


def _linked(votes: list[_Vote]) -> list[list[_Vote]]:
    """Votes sharing an origin (groups of 2 or more), by union-find over shared tokens.

    Tokens: the static origin, the feed id, the entry id and every ``derived_from`` reference.
    """
    parent = list(range(len(votes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[str, int] = {}
    for i, (_, sub, op) in enumerate(votes):
        for token in (*sub.tokens, op.entry_id, *op.derived_from):
            a, b = find(i), find(first_with.setdefault(token, i))
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[_Vote]] = {}
    for i, vote in enumerate(votes):
        groups.setdefault(find(i), []).append(vote)
    return [members for members in groups.values() if len(members) > 1]


def _by_origin(votes: list[_Vote], bits: int) -> list[list[_Vote]]:
    """Groups of the votes whose subscription bit is in ``bits``, by static origin."""
    groups: dict[str, list[_Vote]] = {}
    for vote in votes:
        if vote[1].bit & bits:
            groups.setdefault(vote[1].origin, []).append(vote)
    return list(groups.values())


class _Quorum:
    __slots__ = ("_subs", "limits", "pct", "totals")

    def __init__(self, thresholds: Thresholds, subs: Iterable[_Sub]) -> None:
        self.limits = thresholds.by_rank()
        self.pct = thresholds.unit is ThresholdUnit.PERCENT
        self.totals: dict[str, int] = {}
        self._subs = list(subs)

    def total(self, kind: str) -> int:
        """Total weight for percentages: origins of the subscriptions admitting ``kind``."""
        total = self.totals.get(kind)
        if total is None:
            best: dict[str, int] = {}
            for sub in self._subs:
                if kind in sub.kinds:
                    best[sub.origin] = max(best.get(sub.origin, 0), sub.weight)
            total = self.totals[kind] = sum(best.values())
        return total

    def met(self, rank: int, support: int, kind: str) -> bool:
        if support <= 0:
            return False
        if self.pct:
            return support * 100 >= self.limits[rank] * self.total(kind)
        return support >= self.limits[rank]

    def choose(self, support: list[int], kind: str) -> int | None:
        """The strictest blocking level meeting its threshold, else accept if met, else None."""
        if not self.pct:
            accept, filter_, reject, drop = self.limits
            if support[3] >= drop:
                return 3
            if support[2] >= reject:
                return 2
            if support[1] >= filter_:
                return 1
            return _ACCEPT if support[0] >= accept else None
        for rank in _BLOCKING_RANKS:
            if self.met(rank, support[rank], kind):
                return rank
        return _ACCEPT if self.met(_ACCEPT, support[_ACCEPT], kind) else None


def _entity(entity: tuple[str, str]) -> Entity:
    kind, key = entity
    return Entity(kind, _normal_key(kind, key))


class _Context:
    """Everything the per-entity step reads, prepared once per merge."""

    def __init__(self, subscriptions: Iterable[Subscription], thresholds: Thresholds, local: LocalState) -> None:
        self.subs: dict[str, _Sub] = {}
        for subscription in subscriptions:
            if subscription.id in self.subs:
                raise MergeInputError(f"subscription {subscription.id!r}: listed twice")
            self.subs[subscription.id] = _Sub(subscription)
        self.shared_masks = _link_subscriptions(sorted(self.subs.values(), key=attrgetter("id")))
        self.quorum = _Quorum(thresholds, self.subs.values())
        self.all_auto = all(sub.auto for sub in self.subs.values())
        self.allows = _normal_domains(local.allows)
        self.excludes = _normal_domains(local.excludes)
        self.manual: dict[Entity, int] = {}
        for entity, policy in local.manual.items():
            self.manual[_entity(entity)] = _RANK[_policy(policy, f"manual decision {entity!r}")]
        self.manual_domains = {e.key: rank for e, rank in self.manual.items() if e.kind == "domain"}
        self.never_retract = frozenset(_entity(e) for e in local.never_auto_retract)
        self.never_apply = frozenset(_entity(e) for e in local.never_auto_apply)
        self.followed_actors = local.followed_actors
        # Every parent of a followed domain: a decision on any of them cuts those follows.
        self.followed_suffixes = frozenset(s for d in _normal_domains(local.followed_domains) for s in _suffixes(d))
        # Filled by _collect: entities with an expired or a capped opinion, or a derived_from.
        self.expired: set[tuple[str, str]] = set()
        self.capped: set[tuple[str, str]] = set()
        self.derived: set[tuple[str, str]] = set()
        # For the fast path (_fast_changes): which tokens of _Sub.tokens are held by more than
        # one subscription, all of them, and what local state could touch which entity.
        holders: dict[str, int] = {}
        for sub in self.subs.values():
            for token in set(sub.tokens):
                holders[token] = holders.get(token, 0) + 1
        for sub in self.subs.values():
            sub.shared = tuple(token for token in dict.fromkeys(sub.tokens) if holders[token] > 1)
        by_preference = sorted(self.subs.values(), key=lambda sub: (-sub.weight, -sub.priority, sub.id))
        for position, sub in enumerate(by_preference):
            sub.preference = position
        self.static_tokens = frozenset(holders)
        # Whether a static token joins subscriptions of different origins (a subscription id
        # equal to another's feed id); with no such token, static links are exactly the origins.
        origins_with: dict[str, set[str]] = {}
        for sub in self.subs.values():
            for token in sub.shared:
                origins_with.setdefault(token, set()).add(sub.origin)
        self.generic_link = any(len(origins) > 1 for origins in origins_with.values())
        self.entity_rules: frozenset[tuple[str, str]] = frozenset(
            {*self.manual, *self.never_retract, *self.never_apply}
        )
        self.domain_rules = self.allows | self.excludes | frozenset(self.manual_domains)
        self.tagged: set[tuple[str, str]] = set()  # entities with an opinion carrying filters or labels


_JUST_THRESHOLD = (Reason.THRESHOLD,)


_ORDERED: dict[tuple[Reason, ...], tuple[Reason, ...]] = {}  # a few dozen combinations occur


def _ordered(reasons: Sequence[Reason]) -> tuple[Reason, ...]:
    """The reasons without repeats in :class:`Reason` order (one shared tuple per combination)."""
    if len(reasons) == 1 and reasons[0] is Reason.THRESHOLD:
        return _JUST_THRESHOLD
    given = tuple(reasons)
    found = _ORDERED.get(given)
    if found is None:
        found = tuple(sorted(set(given), key=_REASON_ORDER.__getitem__))
        if len(_ORDERED) < 4096:
            _ORDERED[given] = found
    return found


def _union(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    """Union of frozensets, reusing one when there is nothing to add (fewer objects to keep)."""
    found = [one for one in sets if one]
    if not found:
        return _EMPTY
    if len(found) == 1:
        return found[0]
    return found[0].union(*found[1:])


def _duplicate(kind: str, key: str, votes: list[_Vote]) -> MergeInputError:
    seen: set[str] = set()
    for _, sub, op in sorted(votes, key=lambda vote: (vote[1].id, vote[2].entry_id)):
        if sub.id in seen:
            return MergeInputError(
                f"opinion {op.entry_id!r}: subscription {sub.id!r} has two opinions on {kind} {key!r}"
            )
        seen.add(sub.id)
    raise AssertionError("no duplicate")  # pragma: no cover


class _Outcome:
    """One entity's votes and quorum, turned into a :class:`Change` (built only for changes)."""

    __slots__ = ("collapsed", "ctx", "entity", "level", "managed", "votes")

    def __init__(
        self,
        ctx: _Context,
        entity: tuple[str, str],
        votes: list[_Vote],
        collapsed: list[list[_Vote]],
        level: int | None,
        managed: ManagedDecision | None,
    ) -> None:
        self.ctx, self.entity, self.votes, self.collapsed = ctx, entity, votes, collapsed
        self.level, self.managed = level, managed

    def auto_level(self) -> int | None:
        """The level the auto-mode subscriptions alone would reach."""
        return self.ctx.quorum.choose(_support(self.votes, self.collapsed, auto_only=True), self.entity[0])

    def supporters(self) -> tuple[Supporter, ...]:
        level, votes = self.level, self.votes
        if level is None:
            return tuple(Supporter(sub.id, op.entry_id, False, _BY_RANK[rank]) for rank, sub, op in votes)
        if not self.collapsed:
            if level == _ACCEPT:
                return tuple(Supporter(sub.id, op.entry_id, rank == _ACCEPT, _BY_RANK[rank]) for rank, sub, op in votes)
            return tuple(Supporter(sub.id, op.entry_id, rank >= level, _BY_RANK[rank]) for rank, sub, op in votes)
        # In a group of copies only the representative counts: largest weight, then priority,
        # then smallest subscription id, among the copies supporting the level.
        uncounted: set[int] = set()
        for members in self.collapsed:
            eligible = [vote for vote in members if (vote[0] == _ACCEPT if level == _ACCEPT else vote[0] >= level)]
            chosen = min(eligible, key=lambda vote: (-vote[1].weight, -vote[1].priority, vote[1].id), default=None)
            uncounted.update(id(vote) for vote in members if vote is not chosen)
        return tuple(
            Supporter(
                sub.id,
                op.entry_id,
                (rank == _ACCEPT if level == _ACCEPT else rank >= level) and id(vote) not in uncounted,
                _BY_RANK[rank],
            )
            for vote in votes
            for rank, sub, op in (vote,)
        )

    def owner_has_opinion(self) -> bool:
        managed = self.managed
        return managed is not None and any(sub.id == managed.owner for _, sub, _ in self.votes)

    def base_reasons(self) -> list[Reason]:
        reasons: list[Reason] = []
        ctx = self.ctx
        if ctx.expired and self.entity in ctx.expired:
            reasons.append(Reason.EXPIRED)
        if ctx.capped and self.entity in ctx.capped:
            reasons.append(Reason.CAP)
        if self.collapsed:
            reasons.append(Reason.INDEPENDENCE)
        return reasons

    def change(self, action: Action, *, merged: int | None, **fields: Any) -> Change:
        managed = self.managed
        return Change(
            entity=Entity(*self.entity),
            action=action,
            previous_policy=managed.policy if managed is not None else None,
            previous_owner=managed.owner if managed is not None else None,
            merged_policy=_BY_RANK[merged] if merged is not None else None,
            supporters=self.supporters(),
            **fields,
        )

    def released(self, action: Action, reasons: Iterable[Reason], draft: bool = False) -> Change:
        """The managed decision leaves management: removed, or orphaned (still enforced)."""
        managed = self.managed
        assert managed is not None
        orphan = action is Action.ORPHAN
        return self.change(
            action,
            merged=self.level,
            policy=managed.policy if orphan else None,
            filters=managed.filters if orphan else _EMPTY,
            labels=managed.labels if orphan else _EMPTY,
            owner=None,
            draft=draft,
            reasons=_ordered((*self.base_reasons(), *reasons)),
        )

    def held(self, owner: str, reasons: Iterable[Reason]) -> Change:
        """A never-auto-retract pin keeps the managed decision as it is."""
        managed = self.managed
        assert managed is not None
        return self.change(
            Action.KEEP,
            merged=self.level,
            policy=managed.policy,
            filters=managed.filters,
            labels=managed.labels,
            owner=owner,
            draft=False,
            reasons=_ordered((*self.base_reasons(), *reasons, Reason.PINNED)),
            review=(Review.PINNED,),
        )

    def retracted(self, extra: list[Reason]) -> Change:
        """No quorum any more (or a manual parent took over): remove, orphan or hold."""
        ctx, managed = self.ctx, self.managed
        assert managed is not None
        if not self.owner_has_opinion():
            extra.append(Reason.RETRACTED)
        elif self.level is None:
            extra.append(Reason.BELOW_THRESHOLD)
        if self.entity in ctx.never_retract:
            return self.held(managed.owner, extra)
        previous = ctx.subs.get(managed.owner)
        if previous is None:
            return self.released(Action.ORPHAN, (*extra, Reason.OWNER_GONE))
        pinned = self.entity in ctx.never_apply
        if not previous.auto:
            extra.append(Reason.DRAFT_MODE)
        if pinned:
            extra.append(Reason.PINNED)
        remove = previous.sub.retraction_mode is RetractionMode.REMOVE
        return self.released(Action.REMOVE if remove else Action.ORPHAN, extra, not previous.auto or pinned)

    def result(
        self, rank: int, filters: frozenset[str], labels: frozenset[str], owner: _Sub, extra: list[Reason]
    ) -> Change:
        """A quorum result that differs from the managed decision (or needs review)."""
        ctx, managed, level = self.ctx, self.managed, self.level
        assert level is not None
        previous_rank = _RANK[managed.policy] if managed is not None else -1
        protected = rank < level
        policy = _BY_RANK[rank]
        reasons = [*self.base_reasons(), *extra, Reason.THRESHOLD]
        review: tuple[Review, ...] = ()
        draft = False
        if protected:
            draft = True
            reasons.append(Reason.FOLLOW_PROTECTION)
            review = (Review.FOLLOWS,)
        if managed is not None and owner.id != managed.owner:
            reasons.append(Reason.OWNER_CHANGED)
            if managed.owner not in ctx.subs:
                reasons.append(Reason.OWNER_GONE)
            elif not self.owner_has_opinion():
                reasons.append(Reason.RETRACTED)

        lowered = rank < previous_rank
        if lowered and ctx.never_retract and self.entity in ctx.never_retract:
            return self.held(owner.id, reasons)
        if managed is None:
            action = Action.ADD
        elif protected or (policy, filters, labels) != (managed.policy, managed.filters, managed.labels):
            action = Action.UPDATE
        else:
            action = Action.KEEP  # only the owner changed
        if action is not Action.KEEP:
            # Drafts: a draft-mode owner, a quorum that needs draft-mode votes, a downgrade
            # decided by a draft-mode previous owner, or a pin.
            previous = ctx.subs.get(managed.owner) if managed is not None else None
            needs_draft_votes = (
                not ctx.all_auto and not all(sub.auto for _, sub, _ in self.votes) and self.auto_level() != level
            )
            if not owner.auto or needs_draft_votes or (lowered and previous is not None and not previous.auto):
                draft = True
                reasons.append(Reason.DRAFT_MODE)
            if ctx.never_apply and self.entity in ctx.never_apply:
                draft = True
                reasons.append(Reason.PINNED)
        return self.change(
            action,
            merged=level,
            policy=policy,
            filters=filters,
            labels=labels,
            owner=owner.id,
            draft=draft,
            reasons=_ordered(reasons),
            review=review,
            affects_follows=protected,
        )


def _decide(ctx: _Context, kind: str, key: str, votes: list[_Vote], managed: ManagedDecision | None) -> Change | None:
    """The change for one entity, or ``None`` when nothing is to be recorded."""
    # Quorum (§6.b steps 3-4). Votes are in subscription-id order.
    level: int | None = None
    collapsed: list[list[_Vote]] = []  # votes sharing an origin, groups of 2 or more
    if votes:
        sums = [0, 0, 0, 0]
        seen = 0
        for rank, sub, _ in votes:
            if seen & sub.bit:
                raise _duplicate(kind, key, votes)
            seen |= sub.bit
            sums[rank] += sub.weight
        support = _cumulative(sums)
        count = len(votes)
        if count > 1:
            # derived_from, or one entry served by two feeds (a verbatim mirror): union-find.
            if (ctx.derived and (kind, key) in ctx.derived) or len({vote[2].entry_id for vote in votes}) < count:
                collapsed = _linked(votes)
            else:
                bits = 0
                for mask in ctx.shared_masks:
                    present = seen & mask
                    if present & (present - 1):
                        bits |= present
                if bits:
                    collapsed = _by_origin(votes, bits)
            if collapsed:
                support = _support(votes, collapsed, auto_only=False)
        level = ctx.quorum.choose(support, kind)
    if level is None and managed is None:
        return None
    outcome = _Outcome(ctx, (kind, key), votes, collapsed, level, managed)

    # Local precedence (step 6): allow / exclude, then an exact manual decision leave nothing
    # for the subscriptions to do (a managed decision is released); a parent's manual decision
    # lets through only a stricter subdomain result.
    extra: list[Reason] = []
    if kind == "domain" and (ctx.allows or ctx.excludes):
        suffixes = _suffixes(key)
        if any(s in ctx.allows for s in suffixes):
            return outcome.released(Action.REMOVE, (Reason.LOCAL_ALLOW,)) if managed is not None else None
        if any(s in ctx.excludes for s in suffixes):
            return outcome.released(Action.ORPHAN, (Reason.LOCAL_EXCLUDE,)) if managed is not None else None
    if ctx.manual and (kind, key) in ctx.manual:
        return outcome.released(Action.ORPHAN, (Reason.MANUAL,)) if managed is not None else None
    if level is not None and kind == "domain" and ctx.manual_domains:
        for parent in _suffixes(key)[1:]:
            parent_rank = ctx.manual_domains.get(parent)
            if parent_rank is not None:
                if level <= parent_rank:
                    level = None
                    extra.append(Reason.MANUAL)
                break
    if level is None:
        return outcome.retracted(extra) if managed is not None else None

    # The result (step 5): owner, filters and labels from the sources backing the level.
    if level == _ACCEPT:
        backing = [vote for vote in votes if vote[0] == _ACCEPT]
    else:
        backing = [vote for vote in votes if vote[0] >= level]
    owner = backing[0][1]
    if len(backing) == 1:
        filters, labels = backing[0][2].filters, backing[0][2].labels
    else:
        for _, sub, _ in backing:
            if sub.priority > owner.priority:  # ties keep the smallest id: votes are in id order
                owner = sub
        filters = _union([op.filters for _, _, op in backing])
        labels = _union([op.labels for _, _, op in backing])

    # Follow protection (step 7): never newly raise enforcement above filter on followed accounts.
    rank = level
    previous_rank = _RANK[managed.policy] if managed is not None else -1
    if rank > _FILTER and rank > previous_rank:
        if key in (ctx.followed_suffixes if kind == "domain" else ctx.followed_actors):
            rank = max(_FILTER, previous_rank)
    if (
        managed is not None
        and rank == level
        and owner.id == managed.owner
        and _BY_RANK[rank] is managed.policy
        and filters == managed.filters
        and labels == managed.labels
    ):
        return None
    return outcome.result(rank, filters, labels, owner, extra)


# ---------------------------------------------------------------------------- public functions


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while merging.

    A merge allocates around a million objects, none in a reference cycle, so the collector
    can find nothing; left running, it walks the whole heap (the opinions included) several
    times, which measured as a third of the merge's time. Reference counting frees everything
    as usual. The collector is re-enabled only if it was enabled before, so nested or
    concurrent merges leave it as they found it.

    Before re-enabling, the objects made meanwhile (the result: ~700,000 Changes, Supporters
    and tuples for the issue's bench) are moved straight to the oldest generation with
    ``gc.freeze()`` + ``gc.unfreeze()`` (documented: unfreeze puts the frozen objects back into
    the oldest generation). Otherwise the first allocation after re-enabling walks all of them
    at once as the youngest generation, cold in memory: 0.2 s of the bench, to find no cycle.
    This is skipped when the application froze objects itself (``gc.get_freeze_count()``), as
    unfreezing would thaw those. Cost: young objects of other threads promoted at the same time
    are collected, if cyclic garbage, by the next full collection rather than a young one.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def merge(
    opinions: Iterable[Opinion],
    subscriptions: Iterable[Subscription],
    thresholds: Thresholds,
    local: LocalState,
    *,
    now: datetime,
    max_changes: int = DEFAULT_MAX_CHANGES,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    min_changes: int = DEFAULT_MIN_CHANGES,
) -> MergeResult:
    """Merge every subscription's current opinions into one change per affected entity.

    ``opinions`` are the subscriptions' current entries (at most one per subscription and
    entity; retracted entries left out); passing them grouped by subscription is fastest.
    Entities whose merged result equals their managed decision produce no change. The circuit
    breaker runs with ``max_changes``, ``max_fraction`` and ``min_changes`` over
    ``len(local.managed)``; when it trips every change becomes a draft. Raises
    :class:`MergeInputError` on inconsistent input.
    """
    _aware(now, "now")
    with _cyclic_gc_paused():
        return _merge(opinions, subscriptions, thresholds, local, now, (max_changes, max_fraction, min_changes))


def _merge_reference(
    opinions: Iterable[Opinion],
    subscriptions: Iterable[Subscription],
    thresholds: Thresholds,
    local: LocalState,
    *,
    now: datetime,
    max_changes: int = DEFAULT_MAX_CHANGES,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    min_changes: int = DEFAULT_MIN_CHANGES,
) -> MergeResult:
    """:func:`merge` by the straightforward path only, kept as the reference for the tests.

    Every opinion goes through the per-opinion loop (:func:`_collect`) and every entity through
    :func:`_decide`; :func:`merge` takes the fast path (:func:`_collect_runs`,
    :func:`_fast_changes`) and must return the same result, or raise the same error.
    """
    _aware(now, "now")
    with _cyclic_gc_paused():
        breaker = (max_changes, max_fraction, min_changes)
        return _merge(opinions, subscriptions, thresholds, local, now, breaker, fast=False)


def _merge(
    opinions: Iterable[Opinion],
    subscriptions: Iterable[Subscription],
    thresholds: Thresholds,
    local: LocalState,
    now: datetime,
    breaker: tuple[int, float, int],
    fast: bool = True,
) -> MergeResult:
    ctx = _Context(subscriptions, thresholds, local)
    by_kind = _collect_runs(opinions, ctx, now) if fast else _collect(opinions, ctx, now)

    managed: dict[str, dict[str, ManagedDecision]] = {}
    for entity, decision in local.managed.items():
        kind, key = _entity(entity)
        managed.setdefault(kind, {})[key] = decision
    if fast:
        changes = _fast_changes(ctx, by_kind, managed)
    else:
        changes = []
        for kind, by_key in by_kind.items():
            find_managed = managed.get(kind, {}).get
            for key, votes in by_key.items():
                change = _decide(ctx, kind, key, votes, find_managed(key))
                if change is not None:
                    changes.append(change)
        for kind, decisions in managed.items():
            voted = by_kind.get(kind, {})
            for key, decision in decisions.items():
                if key not in voted:
                    change = _decide(ctx, kind, key, [], decision)
                    if change is not None:
                        changes.append(change)
        changes.sort(key=attrgetter("entity"))

    managed_count = sum(len(decisions) for decisions in managed.values())
    max_changes, max_fraction, min_changes = breaker
    tripped = circuit_breaker(
        changes, managed_count, max_changes=max_changes, max_fraction=max_fraction, min_changes=min_changes
    )
    if tripped:
        for change in changes:  # fresh objects nobody else holds yet: turned into drafts in place
            if change.action is not Action.KEEP:
                _set_draft(change, True)
                _set_reasons(change, _ordered((*change.reasons, Reason.CIRCUIT_BREAKER)))
    return MergeResult(changes=tuple(changes), circuit_breaker=tripped, managed_count=managed_count)


def _collect(opinions: Iterable[Opinion], ctx: _Context, now: datetime) -> dict[str, dict[str, list[_Vote]]]:
    """Admitted current opinions as votes by entity kind and key, in subscription-id order.

    The hot loop: one pass; the subscription is looked up once per run of opinions from the
    same subscription. When the runs do not come in subscription-id order the lists are sorted
    afterwards, so the result never depends on input order.
    """
    by_kind: dict[str, dict[str, list[_Vote]]] = {}
    expired, capped, derived, find_sub, rank_of = ctx.expired, ctx.capped, ctx.derived, ctx.subs.get, _RANK
    in_order = True
    sub_id: str | None = None
    sub: _Sub | None = None
    kinds: frozenset[str] = frozenset()
    labels: frozenset[str] | None = None
    cap = _RANK[Policy.DROP]
    last_kind, by_key = "", by_kind.setdefault("", {})
    for op in opinions:
        if op.subscription_id is not sub_id:
            previous = sub
            sub = find_sub(op.subscription_id)
            if sub is None:
                raise MergeInputError(f"opinion {op.entry_id!r}: unknown subscription {op.subscription_id!r}")
            if previous is not None and previous.bit > sub.bit:
                in_order = False
            sub_id, kinds, labels, cap = op.subscription_id, sub.kinds, sub.labels, sub.cap
        assert sub is not None
        kind = op.entity_kind
        if kind not in kinds or (labels is not None and labels.isdisjoint(op.labels)):
            continue
        if op.expires is not None and op.expires <= now:
            expired.add((kind, op.entity_key))
            continue
        rank = rank_of[op.policy]
        if rank > cap:
            capped.add((kind, op.entity_key))
            if cap == _ACCEPT:
                continue  # a cap limits a source; it never turns its block into an allow
            rank = cap
        if op.derived_from:
            derived.add((kind, op.entity_key))
        if kind != last_kind:
            last_kind, by_key = kind, by_kind.setdefault(kind, {})
        bucket = by_key.get(op.entity_key)
        if bucket is None:
            by_key[op.entity_key] = [(rank, sub, op)]
        else:
            bucket.append((rank, sub, op))
    by_kind.pop("", None)
    if not in_order:
        for by_key in by_kind.values():
            for bucket in by_key.values():
                if len(bucket) > 1:
                    bucket.sort(key=lambda vote: vote[1].bit)
    return by_kind


# ---------------------------------------------------------------------------- the fast path
#
# merge() takes this path; _merge_reference() the one above, and the tests compare the two on
# randomised workloads (tests/test_moderation_merge.py, test_fast_path__*). Speed matters (the
# issue's bench: 10 feeds of 50,000 entries in under 2 s), and in CPython it is mostly memory
# traffic and interpreter steps per opinion. So:
# - runs of opinions from one subscription are checked and bucketed with C-level iterators when
#   nothing about them needs a per-opinion decision (one admitted kind, no label filter, no cap,
#   no expiry); a bucket lays its votes flat (rank, subscription, opinion, ...), so no tuple per
#   vote is kept and later chased through memory;
# - an entity works on column slices of its bucket and groups of vote indices; the union-find
#   runs only as _decide would run it, in a simpler form when no token can surprise it;
# - an entity no local state touches is decided here: no managed decision yet makes an ``add``
#   built directly (Supporters made in C, the Change filled slot by slot); a managed decision
#   equal to the result makes nothing; anything else goes to _decide, unchanged;
# - entities are visited in sorted order, so the changes need no final sort.

_get_subscription_id = attrgetter("subscription_id")
_get_kind = attrgetter("entity_kind")
_get_key = attrgetter("entity_key")
_get_policy = attrgetter("policy")
_get_expires = attrgetter("expires")
_get_derived = attrgetter("derived_from")
_get_entry_id = attrgetter("entry_id")
_get_filters = attrgetter("filters")
_get_id = attrgetter("id")
_get_labels = attrgetter("labels")
_rank_of = _RANK.__getitem__
_new_tuple = tuple.__new__


# Change's fields in declaration order, each with its slot's setter (for _new_add).
_CHANGE_FIELDS = (
    "entity",
    "action",
    "policy",
    "filters",
    "labels",
    "owner",
    "previous_policy",
    "previous_owner",
    "merged_policy",
    "supporters",
    "draft",
    "reasons",
    "review",
    "affects_follows",
)
if tuple(f.name for f in fields(Change)) != _CHANGE_FIELDS:  # pragma: no cover
    raise RuntimeError("_CHANGE_FIELDS is out of step with Change")
(
    _set_entity,
    _set_action,
    _set_policy,
    _set_filters,
    _set_labels,
    _set_owner,
    _set_previous_policy,
    _set_previous_owner,
    _set_merged_policy,
    _set_supporters,
    _set_draft,
    _set_reasons,
    _set_review,
    _set_affects_follows,
) = (getattr(Change, name).__set__ for name in _CHANGE_FIELDS)


def _new_add(
    entity: Entity,
    policy: Policy,
    filters: frozenset[str],
    labels: frozenset[str],
    owner: str,
    supporters: tuple[Supporter, ...],
    draft: bool,
    reasons: tuple[Reason, ...],
) -> Change:
    """An ``add`` Change, filled slot by slot (the frozen __init__'s object.__setattr__ per
    field costs twice as much)."""
    change: Change = object.__new__(Change)
    _set_entity(change, entity)
    _set_action(change, Action.ADD)
    _set_policy(change, policy)
    _set_filters(change, filters)
    _set_labels(change, labels)
    _set_owner(change, owner)
    _set_previous_policy(change, None)
    _set_previous_owner(change, None)
    _set_merged_policy(change, policy)
    _set_supporters(change, supporters)
    _set_draft(change, draft)
    _set_reasons(change, reasons)
    _set_review(change, ())
    _set_affects_follows(change, False)
    return change


def _drain(calls: Iterable[object]) -> None:
    """Run an iterator of calls for their effect (in C, keeping nothing)."""
    deque(calls, maxlen=0)


# A bucket of the fast path: the votes of one entity laid flat, ``rank, sub, opinion`` repeated
# (no tuple per vote to allocate, keep and later chase through memory).
_Flat = list[Any]


def _votes(flat: _Flat) -> list[_Vote]:
    it = iter(flat)
    return cast("list[_Vote]", list(zip(it, it, it, strict=True)))


def _collect_runs(opinions: Iterable[Opinion], ctx: _Context, now: datetime) -> dict[str, dict[str, _Flat]]:
    """What :func:`_collect` finds (same votes in the same order, same side sets), run by run."""
    by_kind: dict[str, dict[str, _Flat]] = {}
    find_sub = ctx.subs.get
    previous: _Sub | None = None
    in_order = True
    for sub_id, members in groupby(opinions, _get_subscription_id):
        run: list[Opinion] = list(members)
        sub = find_sub(sub_id)
        if sub is None:
            raise MergeInputError(f"opinion {run[0].entry_id!r}: unknown subscription {sub_id!r}")
        if previous is not None and previous.bit > sub.bit:
            in_order = False
        previous = sub
        kinds = set(map(_get_kind, run))
        if len(kinds) != 1 or sub.labels is not None or sub.cap != 3 or any(map(_get_expires, run)):
            _collect_run(run, sub, ctx, now, by_kind)
            continue
        kind = kinds.pop()
        if kind not in sub.kinds:
            continue
        by_key = by_kind.get(kind)
        if by_key is None:
            by_key = by_kind[kind] = defaultdict(list)
        if any(map(_get_derived, run)):
            ctx.derived.update(zip(repeat(kind), map(_get_key, compress(run, map(_get_derived, run)))))
        for getter in (_get_filters, _get_labels):
            if any(map(getter, run)):
                ctx.tagged.update(zip(repeat(kind), map(_get_key, compress(run, map(getter, run)))))
        # All in C: each opinion's bucket (created on first use), extended by its vote.
        buckets = map(by_key.__getitem__, map(_get_key, run))
        _drain(map(list.extend, buckets, zip(map(_rank_of, map(_get_policy, run)), repeat(sub), run)))
    if not in_order:
        for by_key in by_kind.values():
            for key, bucket in by_key.items():
                if len(bucket) > 3:
                    votes = _votes(bucket)
                    votes.sort(key=lambda vote: vote[1].bit)
                    by_key[key] = list(chain.from_iterable(votes))
    return by_kind


def _collect_run(
    run: list[Opinion], sub: _Sub, ctx: _Context, now: datetime, by_kind: dict[str, dict[str, _Flat]]
) -> None:
    """One subscription's run the per-opinion way (the body of :func:`_collect`)."""
    kinds, labels, cap = sub.kinds, sub.labels, sub.cap
    for op in run:
        kind = op.entity_kind
        if kind not in kinds or (labels is not None and labels.isdisjoint(op.labels)):
            continue
        if op.expires is not None and op.expires <= now:
            ctx.expired.add((kind, op.entity_key))
            continue
        rank = _RANK[op.policy]
        if rank > cap:
            ctx.capped.add((kind, op.entity_key))
            if cap == _ACCEPT:
                continue
            rank = cap
        if op.derived_from:
            ctx.derived.add((kind, op.entity_key))
        if op.filters or op.labels:
            ctx.tagged.add((kind, op.entity_key))
        by_key = by_kind.get(kind)
        if by_key is None:
            by_key = by_kind[kind] = defaultdict(list)
        by_key[op.entity_key].extend((rank, sub, op))


def _linked_fast(votes: list[_Vote], static_tokens: frozenset[str]) -> list[list[int]]:
    """The partition :func:`_linked` makes, as groups of vote indices, probing fewer tokens.

    Two subscriptions' static tokens (id, feed id, origin) meet only in ``_Sub.shared``, so the
    others need probing only when some entry id or ``derived_from`` reference equals a static
    token (then a second pass joins them).
    """
    parent = list(range(len(votes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first: dict[str, int] = {}
    claim = first.setdefault
    cross = False
    for i, (_, sub, op) in enumerate(votes):
        token = op.entry_id
        j = claim(token, i)
        if j != i:
            union(i, j)
        if token in static_tokens:
            cross = True
        for token in op.derived_from:
            j = claim(token, i)
            if j != i:
                union(i, j)
            if token in static_tokens:
                cross = True
        for token in sub.shared:
            j = claim(token, i)
            if j != i:
                union(i, j)
    if cross:
        for i, (_, sub, _) in enumerate(votes):
            for token in sub.tokens:
                j = first.get(token, i)
                if j != i:
                    union(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(len(votes)):
        groups.setdefault(find(i), []).append(i)
    return [members for members in groups.values() if len(members) > 1]


def _linked_simple(
    ops: list[Opinion], entry_ids: list[str], seen: int, shared_masks: list[int], static_tokens: frozenset[str]
) -> list[list[int]] | None:
    """:func:`_linked_fast` for votes with distinct entry ids, none of them a static token, when
    static tokens meet only within an origin (``not ctx.generic_link``).

    Then votes share an origin exactly when their subscriptions do, when one's ``derived_from``
    names another's entry id, or when two name the same reference. ``ops`` are the votes'
    opinions, ``entry_ids`` theirs, ``seen`` their subscriptions' bits. Returns ``None`` (use
    :func:`_linked_fast`) when a reference names a static token.
    """
    count = len(ops)
    label = list(range(count))  # each vote's group: its smallest member

    def join(i: int, j: int) -> None:
        a, b = label[i], label[j]
        if a != b:
            if a > b:
                a, b = b, a
            for k in range(count):
                if label[k] == b:
                    label[k] = a

    joined = False
    for mask in shared_masks:
        present = seen & mask
        if present & (present - 1):  # votes are in bit order: a bit's index is the bits below it
            low = present & -present
            first = (seen & (low - 1)).bit_count()
            present ^= low
            while present:
                low = present & -present
                join(first, (seen & (low - 1)).bit_count())
                present ^= low
            joined = True
    named: dict[str, int] = {}
    for i, references in enumerate(map(_get_derived, ops)):
        if references:
            for reference in references:
                if reference in static_tokens:
                    return None
                if reference in entry_ids:
                    join(i, entry_ids.index(reference))
                    joined = True
                j = named.setdefault(reference, i)
                if j != i:
                    join(i, j)
                    joined = True
    if not joined:
        return []
    groups: dict[int, list[int]] = {}
    for i, group in enumerate(label):
        groups.setdefault(group, []).append(i)
    return [members for members in groups.values() if len(members) > 1]


def _by_origin_fast(subs: list[_Sub], bits: int) -> list[list[int]]:
    """:func:`_by_origin` as groups of vote indices (``subs``: the votes' subscriptions)."""
    groups: dict[str, list[int]] = {}
    for i, sub in enumerate(subs):
        if sub.bit & bits:
            groups.setdefault(sub.origin, []).append(i)
    return list(groups.values())


def _support_fast(ranks: list[int], subs: list[_Sub], sums: list[int], groups: list[list[int]]) -> list[int]:
    """:func:`_support` (all modes) from the plain per-rank sums and groups of vote indices."""
    sums = sums.copy()
    for members in groups:
        for i in members:
            sums[ranks[i]] -= subs[i].weight
    support = _cumulative(sums)
    for members in groups:  # _add_origin
        best = [0, 0, 0, 0]
        for i in members:
            weight, rank = subs[i].weight, ranks[i]
            if weight > best[rank]:
                best[rank] = weight
        support[_ACCEPT] += best[_ACCEPT]
        running = best[3]
        support[3] += running
        if best[2] > running:
            running = best[2]
        support[2] += running
        if best[1] > running:
            running = best[1]
        support[1] += running
    return support


def _first_duplicate(by_kind: dict[str, dict[str, _Flat]]) -> MergeInputError:
    """The duplicate the reference path reports: the first in bucket order."""
    for kind, by_key in by_kind.items():
        for key, bucket in by_key.items():
            seen = 0
            for sub in bucket[1::3]:
                if seen & sub.bit:
                    return _duplicate(kind, key, _votes(bucket))
                seen |= sub.bit
    raise AssertionError("no duplicate")  # pragma: no cover


def _fast_changes(
    ctx: _Context, by_kind: dict[str, dict[str, _Flat]], managed: dict[str, dict[str, ManagedDecision]]
) -> list[Change]:
    """Every entity's change, in entity order: :func:`_fast_decide` where it can, else :func:`_decide`."""
    changes: list[Change] = []
    append = changes.append
    entity_rules, domain_rules = ctx.entity_rules, ctx.domain_rules
    no_votes: dict[str, _Flat] = {}
    no_decisions: dict[str, ManagedDecision] = {}
    try:
        for kind in sorted(by_kind.keys() | managed.keys()):
            by_key = by_kind.get(kind, no_votes)
            decisions = managed.get(kind, no_decisions)
            find_managed = decisions.get
            keys = sorted(by_key.keys() | decisions.keys()) if decisions else sorted(by_key)
            domain = kind == "domain"
            followed = ctx.followed_suffixes if domain else ctx.followed_actors
            for key in keys:
                bucket = by_key.get(key)
                decision = find_managed(key)
                if (
                    bucket is None
                    or (followed and key in followed)
                    or (entity_rules and (kind, key) in entity_rules)
                    or (domain and domain_rules and any(s in domain_rules for s in _suffixes(key)))
                ):
                    change = _decide(ctx, kind, key, _votes(bucket) if bucket else [], decision)
                else:
                    change = _fast_decide(ctx, kind, key, bucket, decision)
                if change is not None:
                    append(change)
    except MergeInputError:
        raise _first_duplicate(by_kind) from None
    return changes


def _fast_decide(ctx: _Context, kind: str, key: str, bucket: _Flat, managed: ManagedDecision | None) -> Change | None:
    """:func:`_decide` for an entity no local state touches; hands anything but a new add back.

    Works on the bucket's columns (ranks, subscriptions, opinions: list slices, no tuple per
    vote) and, for independence, on groups of vote indices.
    """
    ranks: list[int] = bucket[0::3]
    subs: list[_Sub] = bucket[1::3]
    groups: list[list[int]] = []  # indices of votes sharing an origin, groups of 2 or more
    sums = [0, 0, 0, 0]
    entry_ids: list[str]
    if len(ranks) == 1:
        sums[ranks[0]] = subs[0].weight
        support = _cumulative(sums)
        entry_ids = [bucket[2].entry_id]
    else:
        seen = 0
        for rank, sub in zip(ranks, subs, strict=True):
            bit = sub.bit
            if seen & bit:
                raise _duplicate(kind, key, _votes(bucket))
            seen |= bit
            sums[rank] += sub.weight
        support = _cumulative(sums)
        entry_ids = list(map(_get_entry_id, bucket[2::3]))
        # As _decide: the union-find for a derived_from or an entry id served by two feeds (a
        # verbatim mirror); the simple one unless an entry id repeats or names a static token,
        # or static tokens join origins.
        mirrored = len(set(entry_ids)) < len(entry_ids)
        if mirrored or (ctx.derived and (kind, key) in ctx.derived):
            simple = None
            if not mirrored and not ctx.generic_link and ctx.static_tokens.isdisjoint(entry_ids):
                simple = _linked_simple(bucket[2::3], entry_ids, seen, ctx.shared_masks, ctx.static_tokens)
            groups = _linked_fast(_votes(bucket), ctx.static_tokens) if simple is None else simple
        else:
            bits = 0
            for mask in ctx.shared_masks:
                present = seen & mask
                if present & (present - 1):
                    bits |= present
            if bits:
                groups = _by_origin_fast(subs, bits)
        if groups:
            support = _support_fast(ranks, subs, sums, groups)
    level = ctx.quorum.choose(support, kind)
    if level is None:
        return None if managed is None else _decide(ctx, kind, key, _votes(bucket), managed)

    # The result (_decide step 5): owner, filters and labels from the votes backing the level.
    entity = (kind, key)
    ops: list[Opinion] = bucket[2::3]
    if level == _ACCEPT:
        backing = list(compress(range(len(ranks)), map(_ACCEPT.__eq__, ranks)))
    else:
        backing = list(compress(range(len(ranks)), map(level.__le__, ranks)))  # rank >= level
    owner = subs[backing[0]]
    if len(backing) == 1:
        op = ops[backing[0]]
        filters, labels = op.filters, op.labels
    else:
        for i in backing:
            if subs[i].priority > owner.priority:  # ties keep the smallest id: votes are in id order
                owner = subs[i]
        if ctx.tagged and entity in ctx.tagged:
            filters = _union([ops[i].filters for i in backing])
            labels = _union([ops[i].labels for i in backing])
        else:
            filters = labels = _EMPTY
    policy = _BY_RANK[level]
    if managed is not None:
        if (
            owner.id == managed.owner
            and policy is managed.policy
            and filters == managed.filters
            and labels == managed.labels
        ):
            return None
        return _decide(ctx, kind, key, _votes(bucket), managed)

    # A new decision: _Outcome.result with no previous decision, no pin, no follows.
    reasons: list[Reason] = []
    if ctx.expired and entity in ctx.expired:
        reasons.append(Reason.EXPIRED)
    if ctx.capped and entity in ctx.capped:
        reasons.append(Reason.CAP)
    if groups:
        reasons.append(Reason.INDEPENDENCE)
    reasons.append(Reason.THRESHOLD)
    draft = not owner.auto
    if not draft and not ctx.all_auto and not all(sub.auto for sub in subs):
        votes = _votes(bucket)
        collapsed = [[votes[i] for i in members] for members in groups]
        draft = ctx.quorum.choose(_support(votes, collapsed, auto_only=True), kind) != level
    if draft:
        reasons.append(Reason.DRAFT_MODE)

    # Supporters (_Outcome.supporters): a vote counts when it backs the level, except that in a
    # group of copies only the representative does (largest weight, priority, smallest id).
    uncounted: set[int] = set()
    for members in groups:
        if level == _ACCEPT:
            eligible = [i for i in members if ranks[i] == _ACCEPT]
        else:
            eligible = [i for i in members if ranks[i] >= level]
        if len(eligible) > 1:
            uncounted.update(eligible)
            uncounted.discard(min(eligible, key=lambda i: subs[i].preference))
    if level == _ACCEPT:
        counted: Iterable[bool] = map(_ACCEPT.__eq__, ranks)
    else:
        counted = map(level.__le__, ranks)  # rank >= level
    if uncounted:
        counted = [flag and i not in uncounted for i, flag in enumerate(counted)]
    # In C: Supporter(sub.id, op.entry_id, counted, policy) per vote.
    details = zip(map(_get_id, subs), entry_ids, counted, map(_BY_RANK.__getitem__, ranks), strict=True)
    supporters = tuple(map(_new_tuple, repeat(Supporter), details))
    return _new_add(_new_tuple(Entity, entity), policy, filters, labels, owner.id, supporters, draft, _ordered(reasons))


def circuit_breaker(
    changes: Iterable[Change],
    managed_count: int,
    *,
    max_changes: int = DEFAULT_MAX_CHANGES,
    max_fraction: float = DEFAULT_MAX_FRACTION,
    min_changes: int = DEFAULT_MIN_CHANGES,
) -> bool:
    """Whether one sync would change too much at once (research/moderation.md §6.b step 7).

    Counts the changes that would apply without a moderator (adds, updates, removals, orphans
    that are not drafts). Trips when that count exceeds ``max_changes``, or exceeds
    ``max_fraction`` of ``managed_count`` while also exceeding ``min_changes``. The floor is a
    departure from §6.b: without it a sync adding one decision to an instance that manages none
    (or removing the only one) would always trip, and "A adds a decision, B applies it after one
    sync" could never happen in auto mode.
    """
    _require(
        _is_int(managed_count) and managed_count >= 0,
        f"managed_count: an integer >= 0 is required, got {managed_count!r}",
    )
    _require(
        _is_int(max_changes) and max_changes >= 0, f"max_changes: an integer >= 0 is required, got {max_changes!r}"
    )
    _require(0 <= max_fraction <= 1, f"max_fraction: a fraction in [0, 1] is required, got {max_fraction!r}")
    _require(
        _is_int(min_changes) and min_changes >= 0, f"min_changes: an integer >= 0 is required, got {min_changes!r}"
    )
    count = sum(1 for c in changes if not c.draft and c.action is not Action.KEEP)
    if count > max_changes:
        return True
    return count > min_changes and count > max_fraction * managed_count


def apply_circuit_breaker(changes: Iterable[Change]) -> tuple[Change, ...]:
    """Every change as a draft with reason ``circuit_breaker`` (keeps, which apply nothing, as they are)."""
    out: list[Change] = []
    for change in changes:
        if change.action is Action.KEEP:
            out.append(change)
        else:
            reasons = _ordered((*change.reasons, Reason.CIRCUIT_BREAKER))
            out.append(replace(change, draft=True, reasons=reasons))
    return tuple(out)


def implicit_retractions(previous_fetches: Sequence[Set[str]], current: Set[str]) -> set[str]:
    """Legacy-list keys implicitly retracted by this fetch (GoToSocial semantics, §6.b "Retractions").

    ``previous_fetches`` are earlier *successful* fetches, oldest first; ``current`` is this
    successful fetch. A key is retracted now when it was present two fetches ago and is absent
    from both the previous fetch and this one, so it is reported once, at the second absence.
    A key missing from one fetch only is still supported: for the merge, a legacy source's
    opinions are the keys of ``current`` plus those of the previous fetch.
    """
    if len(previous_fetches) < 2:
        return set()
    before, last = previous_fetches[-2], previous_fetches[-1]
    return {key for key in before if key not in last and key not in current}
