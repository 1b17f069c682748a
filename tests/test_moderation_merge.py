"""The subscription merge (moderation/merge.py): research/moderation.md §6.b and §6.c tests 11-20.

Pure tests: opinions, subscriptions and local state in, changes out. Test numbers in the names'
docstrings refer to research/moderation.md §6.c.
"""

from __future__ import annotations

import gc
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moderation.merge import (
    Action,
    Change,
    Entity,
    LocalState,
    ManagedDecision,
    MergeInputError,
    MergeResult,
    Mode,
    Opinion,
    Policy,
    Reason,
    RetractionMode,
    Review,
    Subscription,
    Supporter,
    Thresholds,
    ThresholdUnit,
    _merge_reference,
    apply_circuit_breaker,
    circuit_breaker,
    implicit_retractions,
    merge,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sub(name: str, **fields: object) -> Subscription:
    """An auto-mode subscription unless told otherwise (most tests are about what applies)."""
    fields.setdefault("mode", Mode.AUTO)
    return Subscription(id=name, **fields)  # type: ignore[arg-type]


def op(subscription: str, key: str, policy: str = "drop", *, kind: str = "domain", **fields: object) -> Opinion:
    fields.setdefault("entry_id", f"https://{subscription}/entries/{kind}/{key}")
    return Opinion(
        subscription_id=subscription,
        entity_kind=kind,
        entity_key=key,
        policy=Policy(policy),
        **fields,  # type: ignore[arg-type]
    )


def run(
    opinions: list[Opinion],
    subscriptions: list[Subscription],
    local: LocalState | None = None,
    thresholds: Thresholds | None = None,
    **limits: float,
) -> MergeResult:
    return merge(opinions, subscriptions, thresholds or Thresholds(), local or LocalState(), now=NOW, **limits)  # type: ignore[arg-type]


def only(result: MergeResult, key: str, kind: str = "domain") -> Change:
    change = result.for_entity(kind, key)
    assert change is not None, f"no change for {kind} {key}: {result.changes}"
    return change


def managed(policy: str, owner: str, **fields: object) -> ManagedDecision:
    return ManagedDecision(policy=Policy(policy), owner=owner, **fields)  # type: ignore[arg-type]


def dom(key: str) -> Entity:
    return Entity("domain", key)


ABC = [sub("a"), sub("b"), sub("c")]


# ---------------------------------------------------------------------------- test 11: thresholds


def test_threshold__one_drop_source_is_no_action() -> None:
    """Test 11: filter threshold 2, drop threshold 3; one source ``drop`` changes nothing."""
    assert run([op("a", "x.example")], ABC).changes == ()


def test_threshold__two_drop_sources_make_filter() -> None:
    change = only(run([op("a", "x.example"), op("b", "x.example")], ABC), "x.example")
    assert (change.action, change.policy, change.merged_policy) == (Action.ADD, Policy.FILTER, Policy.FILTER)
    assert Reason.THRESHOLD in change.reasons
    assert not change.draft


def test_threshold__three_independent_drop_sources_make_drop() -> None:
    result = run([op(name, "x.example") for name in "abc"], ABC)
    change = only(result, "x.example")
    assert change.policy is Policy.DROP
    assert [s.counted for s in change.supporters] == [True, True, True]


def test_threshold__weights_add_up() -> None:
    heavy = [sub("a", trust_weight=3), sub("b")]
    assert only(run([op("a", "x.example")], heavy), "x.example").policy is Policy.DROP
    assert run([op("b", "x.example")], heavy).changes == ()


def test_threshold__strictest_level_meeting_its_threshold_wins() -> None:
    # drop 1 (a) + reject 1 (b) + filter 1 (c): support(filter) = 3, support(reject) = 2, drop = 1.
    opinions = [op("a", "x.example", "drop"), op("b", "x.example", "reject"), op("c", "x.example", "filter")]
    assert only(run(opinions, ABC), "x.example").policy is Policy.FILTER
    lenient = Thresholds(reject=2)
    assert only(run(opinions, ABC, thresholds=lenient), "x.example").policy is Policy.REJECT


def test_threshold__accept_comes_only_from_accept_opinions() -> None:
    change = only(run([op("a", "x.example", "accept")], ABC), "x.example")
    assert (change.action, change.policy) == (Action.ADD, Policy.ACCEPT)
    # One accept and one drop: the drop is below quorum and does not count towards accept.
    mixed = only(run([op("a", "y.example", "accept"), op("b", "y.example", "drop")], ABC), "y.example")
    assert mixed.policy is Policy.ACCEPT
    assert [(s.subscription_id, s.counted) for s in mixed.supporters] == [("a", True), ("b", False)]


def test_threshold__a_block_meeting_quorum_beats_accept() -> None:
    opinions = [op("a", "x.example", "accept"), op("b", "x.example", "drop"), op("c", "x.example", "drop")]
    assert only(run(opinions, ABC), "x.example").policy is Policy.FILTER


def test_threshold__percentages_of_all_admitting_subscriptions() -> None:
    pct = Thresholds(drop=60, reject=60, filter=30, accept=30, unit=ThresholdUnit.PERCENT)
    # Two of three subscriptions (66 %) say drop.
    assert only(run([op("a", "x.example"), op("b", "x.example")], ABC, thresholds=pct), "x.example").policy is (
        Policy.DROP
    )
    # One of three (33 %) only reaches filter; subscriptions without an opinion still count in the total.
    assert only(run([op("a", "y.example")], ABC, thresholds=pct), "y.example").policy is Policy.FILTER
    five = [*ABC, sub("d"), sub("e")]
    assert run([op("a", "z.example")], five, thresholds=pct).changes == ()  # 20 % < 30 %


def test_threshold__percent_total_ignores_subscriptions_not_admitting_the_kind() -> None:
    pct = Thresholds(drop=50, reject=50, filter=50, accept=50, unit=ThresholdUnit.PERCENT)
    subs = [sub("a", allowed_entity_kinds=frozenset({"actor"})), sub("b"), sub("c")]
    actor = "https://x.example/users/u"
    change = only(run([op("a", actor, kind="actor")], subs, thresholds=pct), actor, "actor")
    assert change.policy is Policy.DROP  # a is the only subscription admitting actors: 100 %


# ---------------------------------------------------------------------------- test 12: independence


def test_independence__copies_via_derived_from_count_once() -> None:
    """Test 12: two feeds derived from the third count as one supporter."""
    original = op("a", "x.example", entry_id="https://a/e/1")
    copies = [
        op("b", "x.example", entry_id="https://b/e/9", derived_from=("https://a/e/1",)),
        op("c", "x.example", entry_id="https://c/e/5", derived_from=("https://a/e/1",)),
    ]
    assert run([original, *copies], ABC).changes == ()  # one origin, weight 1: below filter
    heavy = run([original, *copies], ABC, thresholds=Thresholds(filter=1))
    change = only(heavy, "x.example")
    assert change.policy is Policy.FILTER
    assert Reason.INDEPENDENCE in change.reasons
    assert sum(s.counted for s in change.supporters) == 1


def test_independence__shared_group_counts_once() -> None:
    subs = [sub("a", independence_group="oliphant"), sub("b", independence_group="oliphant"), sub("c")]
    opinions = [op(name, "x.example") for name in "abc"]
    change = only(run(opinions, subs), "x.example")
    assert change.policy is Policy.FILTER  # two origins, not three
    assert Reason.INDEPENDENCE in change.reasons


def test_independence__derived_from_a_feed_id_counts_once() -> None:
    subs = [sub("a", feed_id="https://a.example/feed"), sub("b"), sub("c")]
    opinions = [
        op("a", "x.example"),
        op("b", "x.example", derived_from=("https://a.example/feed",)),
        op("c", "x.example"),
    ]
    assert only(run(opinions, subs), "x.example").policy is Policy.FILTER


def test_independence__copies_of_an_unsubscribed_upstream_count_once() -> None:
    upstream = ("https://elsewhere.example/entries/7",)
    opinions = [
        op("a", "x.example", derived_from=upstream),
        op("b", "x.example", derived_from=upstream),
        op("c", "x.example"),
    ]
    assert only(run(opinions, ABC), "x.example").policy is Policy.FILTER


def test_independence__a_verbatim_mirror_counts_once() -> None:
    """A re-publisher serving A's entry unchanged (same id) is the same origin as A."""
    opinions = [
        op("a", "x.example", entry_id="https://a/e/1"),
        op("b", "x.example", entry_id="https://a/e/1"),
        op("c", "x.example"),
    ]
    assert only(run(opinions, ABC), "x.example").policy is Policy.FILTER


def test_independence__unrelated_provenance_stays_independent() -> None:
    opinions = [
        op("a", "x.example", derived_from=("https://one.example/e/1",)),
        op("b", "x.example", derived_from=("https://two.example/e/2",)),
        op("c", "x.example"),
    ]
    change = only(run(opinions, ABC), "x.example")
    assert change.policy is Policy.DROP
    assert Reason.INDEPENDENCE not in change.reasons


def test_independence__an_origin_counts_with_its_largest_weight() -> None:
    subs = [sub("a"), sub("b", trust_weight=3)]
    opinions = [op("a", "x.example", entry_id="https://a/e/1"), op("b", "x.example", derived_from=("https://a/e/1",))]
    change = only(run(opinions, subs), "x.example")
    assert change.policy is Policy.DROP  # weight 3, not 1 + 3 and not 1
    assert [(s.subscription_id, s.counted) for s in change.supporters] == [("a", False), ("b", True)]


def test_independence__is_transitive() -> None:
    opinions = [
        op("a", "x.example", entry_id="https://a/e/1"),
        op("b", "x.example", entry_id="https://b/e/1", derived_from=("https://a/e/1",)),
        op("c", "x.example", derived_from=("https://b/e/1",)),
    ]
    assert run(opinions, ABC).changes == ()


# ---------------------------------------------------------------------------- test 13: caps


def test_cap__max_policy_filter_never_causes_drop() -> None:
    """Test 13."""
    capped = [sub(name, max_policy=Policy.FILTER, trust_weight=3) for name in "abc"]
    change = only(run([op(name, "x.example") for name in "abc"], capped), "x.example")
    assert change.policy is Policy.FILTER
    assert Reason.CAP in change.reasons
    assert {s.policy for s in change.supporters} == {Policy.FILTER}


def test_cap__applies_before_counting() -> None:
    # Two capped drops and one uncapped: drop support is 1, so drop (threshold 3) is not reached.
    subs = [sub("a", max_policy=Policy.FILTER), sub("b", max_policy=Policy.FILTER), sub("c")]
    assert only(run([op(name, "x.example") for name in "abc"], subs), "x.example").policy is Policy.FILTER


def test_cap__to_accept_makes_a_block_inert_not_an_allow() -> None:
    subs = [sub("a", max_policy=Policy.ACCEPT), sub("b")]
    assert run([op("a", "x.example")], subs).changes == ()
    # Its own accept opinions still count.
    assert only(run([op("a", "y.example", "accept")], subs), "y.example").policy is Policy.ACCEPT


def test_cap__not_reported_when_nothing_was_capped() -> None:
    subs = [sub(name, max_policy=Policy.REJECT) for name in "abc"]
    change = only(run([op(name, "x.example", "filter") for name in "abc"], subs), "x.example")
    assert Reason.CAP not in change.reasons


# ---------------------------------------------------------------------------- test 14: local precedence


def test_local__allow_covers_the_domain_and_its_subdomains() -> None:
    """Test 14: a local allow for x.example stops blocks of x.example and a.x.example."""
    keys = ["x.example", "a.x.example", "b.a.x.example", "notx.example"]
    opinions = [op(name, key) for name in "abc" for key in keys]
    result = run(opinions, ABC, LocalState(allows=frozenset({"x.example"})))
    assert [c.entity.key for c in result.changes] == ["notx.example"]


def test_local__exclude_covers_the_domain_and_its_subdomains() -> None:
    opinions = [op(name, key) for name in "abc" for key in ["x.example", "a.x.example"]]
    assert run(opinions, ABC, LocalState(excludes=frozenset({"X.Example."}))).changes == ()


def test_local__allow_removes_a_managed_block() -> None:
    local = LocalState(allows=frozenset({"x.example"}), managed={dom("a.x.example"): managed("drop", "a")})
    change = only(run([op(name, "a.x.example") for name in "abc"], ABC, local), "a.x.example")
    assert (change.action, change.policy, change.owner) == (Action.REMOVE, None, None)
    assert change.reasons == (Reason.LOCAL_ALLOW,)


def test_local__exclude_orphans_a_managed_block() -> None:
    local = LocalState(excludes=frozenset({"x.example"}), managed={dom("x.example"): managed("drop", "a")})
    change = only(run([], ABC, local), "x.example")
    assert (change.action, change.policy, change.owner) == (Action.ORPHAN, Policy.DROP, None)
    assert Reason.LOCAL_EXCLUDE in change.reasons


def test_local__manual_decision_is_never_touched() -> None:
    """Test 14: a manual block is never removed by a retraction, nor changed by feeds."""
    local = LocalState(manual={dom("x.example"): Policy.DROP})
    assert run([], ABC, local).changes == ()  # nothing supports it: still no change
    assert run([op(name, "x.example", "accept") for name in "abc"], ABC, local).changes == ()
    assert run([op(name, "x.example", "filter") for name in "abc"], ABC, local).changes == ()


def test_local__manual_decision_takes_a_managed_one_out_of_management() -> None:
    local = LocalState(manual={dom("x.example"): Policy.FILTER}, managed={dom("x.example"): managed("drop", "a")})
    change = only(run([], ABC, local), "x.example")
    assert (change.action, change.policy, change.owner) == (Action.ORPHAN, Policy.DROP, None)
    assert Reason.MANUAL in change.reasons


def test_local__parent_manual_decision_admits_only_stricter_subdomain_results() -> None:
    local = LocalState(manual={dom("x.example"): Policy.FILTER})
    milder = run([op(name, "a.x.example", "filter") for name in "abc"], ABC, local)
    assert milder.changes == ()
    stricter = only(run([op(name, "a.x.example") for name in "abc"], ABC, local), "a.x.example")
    assert (stricter.action, stricter.policy) == (Action.ADD, Policy.DROP)


def test_local__subdomain_matching_is_on_label_boundaries() -> None:
    opinions = [op(name, key) for name in "abc" for key in ["badx.example", "1.2.3.4"]]
    result = run(opinions, ABC, LocalState(allows=frozenset({"x.example", "3.4"})))
    assert [c.entity.key for c in result.changes] == ["1.2.3.4", "badx.example"]


def test_local__keys_are_normalised() -> None:
    result = run([op(name, "X.Example.") for name in "abc"], ABC)
    assert [c.entity for c in result.changes] == [Entity("domain", "x.example")]
    actor = "https://x.example/users/Alice"
    subs = [sub(n, allowed_entity_kinds=frozenset({"actor"})) for n in "abc"]
    assert run([op(n, actor, kind="actor") for n in "abc"], subs).changes[0].entity.key == actor


# ---------------------------------------------------------------------------- test 15: follow protection


def test_follow_protection__caps_auto_drop_at_filter_as_a_draft() -> None:
    """Test 15: members follow @u@a.x.example; an auto drop of x.example becomes a filter draft."""
    local = LocalState(followed_domains=frozenset({"a.x.example"}))
    change = only(run([op(name, "x.example") for name in "abc"], ABC, local), "x.example")
    assert (change.action, change.policy, change.merged_policy) == (Action.ADD, Policy.FILTER, Policy.DROP)
    assert change.draft and change.needs_review and change.affects_follows
    assert change.review == (Review.FOLLOWS,)
    assert Reason.FOLLOW_PROTECTION in change.reasons


def test_follow_protection__actor_entities_use_followed_actors() -> None:
    actor = "https://x.example/users/u"
    subs = [sub(n, allowed_entity_kinds=frozenset({"actor"})) for n in "abc"]
    local = LocalState(followed_actors=frozenset({actor}))
    change = only(run([op(n, actor, kind="actor") for n in "abc"], subs, local), actor, "actor")
    assert (change.policy, change.draft, change.affects_follows) == (Policy.FILTER, True, True)


def test_follow_protection__nothing_followed_applies_drop() -> None:
    local = LocalState(followed_domains=frozenset({"y.example", "x.example.org"}))
    change = only(run([op(name, "x.example") for name in "abc"], ABC, local), "x.example")
    assert (change.policy, change.draft, change.affects_follows, change.review) == (Policy.DROP, False, False, ())


def test_follow_protection__blocking_a_subdomain_does_not_cut_parent_follows() -> None:
    local = LocalState(followed_domains=frozenset({"x.example"}))
    change = only(run([op(name, "a.x.example") for name in "abc"], ABC, local), "a.x.example")
    assert (change.policy, change.draft) == (Policy.DROP, False)


def test_follow_protection__does_not_touch_filter_results() -> None:
    local = LocalState(followed_domains=frozenset({"x.example"}))
    change = only(run([op("a", "x.example"), op("b", "x.example")], ABC, local), "x.example")
    assert (change.policy, change.draft, change.affects_follows) == (Policy.FILTER, False, False)


def test_follow_protection__never_loosens_an_existing_decision() -> None:
    local = LocalState(followed_domains=frozenset({"x.example"}), managed={dom("x.example"): managed("drop", "a")})
    assert run([op(name, "x.example") for name in "abc"], ABC, local).changes == ()


# ---------------------------------------------------------------------------- drafts (test 16, pure part)


def test_drafts__draft_mode_subscription_only_drafts() -> None:
    drafts = [sub(name, mode=Mode.DRAFT) for name in "abc"]
    change = only(run([op(name, "x.example") for name in "abc"], drafts), "x.example")
    assert change.draft and Reason.DRAFT_MODE in change.reasons
    assert Subscription(id="new").mode is Mode.DRAFT  # drafts are the default


def test_drafts__a_quorum_that_needs_a_draft_mode_vote_is_a_draft() -> None:
    subs = [sub("a"), sub("b"), sub("c", mode=Mode.DRAFT)]
    needs_c = only(run([op(name, "x.example") for name in "abc"], subs), "x.example")
    assert (needs_c.policy, needs_c.draft) == (Policy.DROP, True)
    # a and b alone reach filter; c adds nothing needed at that level.
    enough = only(run([op("a", "y.example"), op("b", "y.example"), op("c", "y.example", "filter")], subs), "y.example")
    assert (enough.policy, enough.draft) == (Policy.FILTER, False)


def test_drafts__never_auto_apply_pin_makes_a_draft() -> None:
    local = LocalState(never_auto_apply=frozenset({dom("x.example")}))
    change = only(run([op(name, "x.example") for name in "abc"], ABC, local), "x.example")
    assert change.draft and Reason.PINNED in change.reasons


# ---------------------------------------------------------------------------- test 17: circuit breaker


def _hundred_managed() -> tuple[list[Opinion], LocalState]:
    keys = [f"d{i:03}.example" for i in range(100)]
    local = LocalState(managed={dom(k): managed("filter", "a") for k in keys})
    still = [op(name, k) for k in keys[40:] for name in "ab"]
    return still, local


def test_circuit_breaker__retracting_40_of_100_turns_the_sync_into_drafts() -> None:
    """Test 17: nothing changes until approval; moderators are alerted (the flag)."""
    still, local = _hundred_managed()
    result = run(still, ABC, local)
    assert result.circuit_breaker and result.managed_count == 100
    assert len(result.changes) == 40
    assert all(c.action is Action.REMOVE and c.draft for c in result.changes)
    assert all(Reason.CIRCUIT_BREAKER in c.reasons for c in result.changes)
    assert result.applied == ()


def test_circuit_breaker__a_small_sync_applies() -> None:
    keys = [f"d{i:03}.example" for i in range(100)]
    local = LocalState(managed={dom(k): managed("filter", "a") for k in keys})
    result = run([op(name, k) for k in keys[5:] for name in "ab"], ABC, local)
    assert not result.circuit_breaker
    assert len(result.applied) == 5


def test_circuit_breaker__counts() -> None:
    def changes(count: int, *, draft: bool = False, action: Action = Action.ADD) -> list[Change]:
        return [
            Change(
                entity=dom(f"d{i}.example"),
                action=action,
                policy=Policy.DROP,
                filters=frozenset(),
                labels=frozenset(),
                owner="a",
                previous_policy=None,
                previous_owner=None,
                merged_policy=Policy.DROP,
                supporters=(),
                draft=draft,
                reasons=(Reason.THRESHOLD,),
            )
            for i in range(count)
        ]

    assert not circuit_breaker(changes(25), 10_000)
    assert circuit_breaker(changes(26), 10_000)
    assert not circuit_breaker(changes(5), 0)  # a first small sync is not a crisis
    assert circuit_breaker(changes(6), 10)  # more than 10 % of 10 and more than the floor
    assert not circuit_breaker(changes(10), 100)  # exactly 10 %
    assert circuit_breaker(changes(11), 100)
    assert not circuit_breaker(changes(40, draft=True), 100)  # drafts change nothing
    assert not circuit_breaker(changes(40, action=Action.KEEP), 100)
    with pytest.raises(MergeInputError, match="managed_count"):
        circuit_breaker([], -1)
    with pytest.raises(MergeInputError, match="max_fraction"):
        circuit_breaker([], 1, max_fraction=1.5)


def test_circuit_breaker__apply_keeps_keeps_and_copies() -> None:
    still, local = _hundred_managed()
    untripped = run(still, ABC, local, max_changes=1000, max_fraction=1.0)
    assert not untripped.circuit_breaker and not any(c.draft for c in untripped.changes)
    drafted = apply_circuit_breaker(untripped.changes)
    assert all(c.draft and c.reasons[-1] is Reason.CIRCUIT_BREAKER for c in drafted)
    assert not any(c.draft for c in untripped.changes)  # the input is not modified


# ---------------------------------------------------------------------------- tests 18-19: retractions


def test_retraction__only_supporter_removes_in_remove_mode() -> None:
    """Test 18 (remove mode)."""
    subs = [sub("a", trust_weight=3, retraction_mode=RetractionMode.REMOVE)]
    local = LocalState(managed={dom("x.example"): managed("drop", "a")})
    change = only(run([], subs, local), "x.example")
    assert (change.action, change.policy, change.previous_policy, change.previous_owner) == (
        Action.REMOVE,
        None,
        Policy.DROP,
        "a",
    )
    assert Reason.RETRACTED in change.reasons and not change.draft


def test_retraction__only_supporter_orphans_in_orphan_mode() -> None:
    """Test 18 (orphan mode): kept, enforced, no longer managed."""
    subs = [sub("a", trust_weight=3, retraction_mode=RetractionMode.ORPHAN)]
    local = LocalState(managed={dom("x.example"): managed("drop", "a", filters=frozenset({"f"}))})
    change = only(run([], subs, local), "x.example")
    assert (change.action, change.policy, change.filters, change.owner) == (
        Action.ORPHAN,
        Policy.DROP,
        frozenset({"f"}),
        None,
    )


def test_retraction__pinned_entity_stays_and_raises_a_notice() -> None:
    subs = [sub("a", trust_weight=3)]
    local = LocalState(
        managed={dom("x.example"): managed("drop", "a")}, never_auto_retract=frozenset({dom("x.example")})
    )
    result = run([], subs, local)
    change = only(result, "x.example")
    assert (change.action, change.policy, change.review) == (Action.KEEP, Policy.DROP, (Review.PINNED,))
    assert Reason.PINNED in change.reasons and Reason.RETRACTED in change.reasons
    assert result.notices == (change,)


def test_retraction__pinned_entity_is_not_downgraded_either() -> None:
    local = LocalState(
        managed={dom("x.example"): managed("drop", "a")}, never_auto_retract=frozenset({dom("x.example")})
    )
    change = only(run([op("a", "x.example"), op("b", "x.example")], ABC, local), "x.example")
    assert (change.action, change.policy, change.merged_policy) == (Action.KEEP, Policy.DROP, Policy.FILTER)


def test_retraction__draft_mode_owner_removes_as_a_draft() -> None:
    subs = [sub("a", mode=Mode.DRAFT)]
    local = LocalState(managed={dom("x.example"): managed("drop", "a")})
    change = only(run([], subs, local), "x.example")
    assert change.action is Action.REMOVE and change.draft and Reason.DRAFT_MODE in change.reasons


def test_retraction__expired_entry_withdraws_support() -> None:
    subs = [sub("a", trust_weight=3)]
    local = LocalState(managed={dom("x.example"): managed("drop", "a")})
    stale = op("a", "x.example", expires=NOW - timedelta(seconds=1))
    change = only(run([stale], subs, local), "x.example")
    assert change.action is Action.REMOVE and Reason.EXPIRED in change.reasons
    fresh = op("a", "x.example", expires=NOW + timedelta(days=1))
    assert run([fresh], subs, local).changes == ()


def test_retraction__owner_gone_orphans() -> None:
    local = LocalState(managed={dom("x.example"): managed("drop", "unsubscribed")})
    change = only(run([], ABC, local), "x.example")
    assert change.action is Action.ORPHAN and Reason.OWNER_GONE in change.reasons


def test_retraction__quorum_kept_by_another_source_moves_ownership() -> None:
    """Test 19: the decision stays, ownership transfers, both events are in the reasons."""
    subs = [sub("a", trust_weight=3, priority=10), sub("b", trust_weight=3, priority=5), sub("c", priority=1)]
    local = LocalState(managed={dom("x.example"): managed("drop", "a")})
    change = only(run([op("b", "x.example"), op("c", "x.example")], subs, local), "x.example")
    assert (change.action, change.policy, change.owner, change.previous_owner) == (Action.KEEP, Policy.DROP, "b", "a")
    assert Reason.RETRACTED in change.reasons and Reason.OWNER_CHANGED in change.reasons
    assert not change.draft


def test_retraction__losing_quorum_downgrades() -> None:
    local = LocalState(managed={dom("x.example"): managed("drop", "a")})
    change = only(run([op("a", "x.example"), op("b", "x.example")], ABC, local), "x.example")
    assert (change.action, change.policy, change.previous_policy) == (Action.UPDATE, Policy.FILTER, Policy.DROP)


def test_ownership__highest_priority_supporter_owns_ties_by_id() -> None:
    subs = [sub("a", priority=1), sub("b", priority=7), sub("c", priority=7)]
    change = only(run([op(n, "x.example") for n in "abc"], subs), "x.example")
    assert change.owner == "b"
    # A new higher-priority subscription takes over without anything being retracted.
    local = LocalState(managed={dom("x.example"): managed("drop", "a")})
    moved = only(run([op(n, "x.example") for n in "abc"], subs, local), "x.example")
    assert (moved.action, moved.owner) == (Action.KEEP, "b")
    assert Reason.OWNER_CHANGED in moved.reasons and Reason.RETRACTED not in moved.reasons


def test_steady_state__unchanged_decision_produces_no_change() -> None:
    local = LocalState(managed={dom("x.example"): managed("drop", "a", labels=frozenset({"spam"}))})
    opinions = [op(n, "x.example", labels=frozenset({"spam"})) for n in "abc"]
    assert run(opinions, ABC, local).changes == ()
    relabelled = [op(n, "x.example", labels=frozenset({"harassment"})) for n in "abc"]
    change = only(run(relabelled, ABC, local), "x.example")
    assert change.action is Action.UPDATE and change.labels == frozenset({"harassment"})


# ---------------------------------------------------------------------------- test 20: legacy lists


def test_implicit_retraction__two_consecutive_absences() -> None:
    """Test 20 (legacy half): missing twice in a row is a retraction; once is not."""
    assert implicit_retractions([{"a", "b"}], {"a"}) == set()  # only one fetch to compare with
    assert implicit_retractions([{"a", "b"}, {"a", "b"}], {"a"}) == set()  # absent once
    assert implicit_retractions([{"a", "b"}, {"a"}], {"a"}) == {"b"}  # absent twice
    assert implicit_retractions([{"a", "b"}, {"a"}, {"a"}], {"a"}) == set()  # reported once
    assert implicit_retractions([{"a", "b"}, {"a"}], {"a", "b"}) == set()  # came back
    assert implicit_retractions([], set()) == set()


# ---------------------------------------------------------------------------- filters, labels, admission


def test_filters__union_of_sources_backing_the_chosen_level() -> None:
    opinions = [
        op("a", "x.example", filters=frozenset({"reject-media"}), labels=frozenset({"spam"})),
        op("b", "x.example", "filter", filters=frozenset({"auto-cw"})),
        op("c", "x.example", "accept", filters=frozenset({"ignored"}), labels=frozenset({"ignored"})),
    ]
    change = only(run(opinions, ABC), "x.example")
    assert change.policy is Policy.FILTER
    assert change.filters == {"reject-media", "auto-cw"}
    assert change.labels == {"spam"}


def test_admission__entity_kinds_and_labels() -> None:
    actor = "https://x.example/users/u"
    assert run([op(n, actor, kind="actor") for n in "abc"], ABC).changes == ()  # domains only by default
    picky = [sub(n, allowed_labels=frozenset({"csam"})) for n in "abc"]
    assert run([op(n, "x.example", labels=frozenset({"spam"})) for n in "abc"], picky).changes == ()
    assert run([op(n, "x.example", labels=frozenset({"spam", "csam"})) for n in "abc"], picky).changes != ()


def test_result__sorted_and_independent_of_input_order() -> None:
    keys = [f"{c}.example" for c in "qwertyuiop"]
    opinions = [op(n, k, random.Random(k).choice(["drop", "reject", "filter"])) for n in "abc" for k in keys]
    subs = [sub("c", priority=2), sub("a"), sub("b", independence_group="g")]
    first = run(opinions, subs)
    shuffled = list(opinions)
    random.Random(7).shuffle(shuffled)
    assert run(shuffled, list(reversed(subs))) == first
    assert [c.entity for c in first.changes] == sorted(c.entity for c in first.changes)
    assert [s.subscription_id for s in first.changes[0].supporters] == ["a", "b", "c"]


# ---------------------------------------------------------------------------- refusals


def test_refuses__unknown_subscription() -> None:
    with pytest.raises(MergeInputError, match="unknown subscription 'z'"):
        run([op("z", "x.example")], ABC)


def test_refuses__two_opinions_from_one_subscription_on_one_entity() -> None:
    with pytest.raises(MergeInputError, match=r"subscription 'a' has two opinions on domain 'x\.example'"):
        run([op("a", "x.example", entry_id="https://a/1"), op("a", "X.example", entry_id="https://a/2")], ABC)


def test_refuses__duplicate_subscription_and_naive_times() -> None:
    with pytest.raises(MergeInputError, match="listed twice"):
        run([], [sub("a"), sub("a")])
    with pytest.raises(MergeInputError, match="now: a timezone-aware"):
        merge([], ABC, Thresholds(), LocalState(), now=datetime(2026, 1, 1))
    with pytest.raises(MergeInputError, match="expires: a timezone-aware"):
        op("a", "x.example", expires=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"trust_weight": 0}, "trust_weight"),
        ({"trust_weight": True}, "trust_weight"),
        ({"priority": 1.5}, "priority"),
        ({"mode": "sometimes"}, "mode"),
        ({"max_policy": "ban"}, "max_policy"),
        ({"retraction_mode": "forget"}, "retraction_mode"),
        ({"independence_group": ""}, "independence_group"),
        ({"allowed_entity_kinds": "domain"}, "allowed_entity_kinds"),
    ],
)
def test_refuses__bad_subscription(fields: dict[str, object], message: str) -> None:
    with pytest.raises(MergeInputError, match=message):
        Subscription(id="s", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"drop": 0}, "drop"),
        ({"filter": 1.5}, "filter"),
        ({"accept": float("nan")}, "accept"),
        ({"reject": 0, "unit": ThresholdUnit.PERCENT}, "reject"),
        ({"drop": 101, "unit": ThresholdUnit.PERCENT}, "drop"),
        ({"unit": "ratio"}, "unit"),
    ],
)
def test_refuses__bad_thresholds(fields: dict[str, object], message: str) -> None:
    with pytest.raises(MergeInputError, match=message):
        Thresholds(**fields)  # type: ignore[arg-type]


def test_refuses__bad_opinion_fields() -> None:
    with pytest.raises(MergeInputError, match="policy"):
        Opinion(subscription_id="a", entity_kind="domain", entity_key="x", policy="ban", entry_id="e")  # type: ignore[arg-type]
    with pytest.raises(MergeInputError, match="entity_key"):
        Opinion(subscription_id="a", entity_kind="domain", entity_key=".", policy=Policy.DROP, entry_id="e")
    with pytest.raises(MergeInputError, match="derived_from"):
        op("a", "x.example", derived_from=("",))


# ---------------------------------------------------------------------------- properties

_NAMES = ["a", "b", "c", "d"]
_DOMAINS = ["x.example", "a.x.example", "y.example", "b.y.example", "z.example"]


Scenario = tuple[list[Opinion], list[Subscription], LocalState]


@st.composite
def _scenarios(draw: st.DrawFn) -> Scenario:
    subs = [
        Subscription(
            id=name,
            trust_weight=draw(st.integers(1, 3)),
            mode=draw(st.sampled_from(list(Mode))),
            max_policy=draw(st.sampled_from(list(Policy))),
            priority=draw(st.integers(0, 3)),
            retraction_mode=draw(st.sampled_from(list(RetractionMode))),
            independence_group=draw(st.sampled_from([None, None, "g"])),
            feed_id=f"https://{name}.example/feed",
        )
        for name in _NAMES
    ]
    opinions = []
    for name in _NAMES:
        for domain in draw(st.lists(st.sampled_from(_DOMAINS), unique=True)):
            derived = draw(st.sampled_from([(), (), ("https://a.example/feed",), (f"https://b/{domain}",)]))
            opinions.append(
                op(
                    name,
                    domain,
                    draw(st.sampled_from(list(Policy))),
                    filters=frozenset(draw(st.lists(st.sampled_from(["m", "r"])))),
                    labels=frozenset(draw(st.lists(st.sampled_from(["spam", "csam"])))),
                    derived_from=derived,
                    entry_id=draw(st.sampled_from([f"https://{name}/{domain}", f"https://shared/{domain}"])),
                )
            )
    local = LocalState(
        allows=frozenset(draw(st.lists(st.sampled_from(_DOMAINS), max_size=2))),
        manual={
            dom(d): draw(st.sampled_from(list(Policy))) for d in draw(st.lists(st.sampled_from(_DOMAINS), max_size=2))
        },
        followed_domains=frozenset(draw(st.lists(st.sampled_from(_DOMAINS), max_size=2))),
        never_auto_retract=frozenset(dom(d) for d in draw(st.lists(st.sampled_from(_DOMAINS), max_size=1))),
        managed={
            dom(d): managed(draw(st.sampled_from(list(Policy))), draw(st.sampled_from([*_NAMES, "gone"])))
            for d in draw(st.lists(st.sampled_from(_DOMAINS), max_size=3))
        },
    )
    return opinions, subs, local


_PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _covered(key: str, domains: frozenset[str]) -> bool:
    return any(key == d or key.endswith("." + d) for d in domains)


@_PROPERTY
@given(_scenarios(), st.randoms(use_true_random=False))
def test_property__deterministic_and_independent_of_input_order(scenario: Scenario, rand: random.Random) -> None:
    opinions, subs, local = scenario
    first = run(opinions, subs, local)
    opinions2, subs2 = list(opinions), list(subs)
    rand.shuffle(opinions2)
    rand.shuffle(subs2)
    managed2 = dict(rand.sample(list(local.managed.items()), len(local.managed)))
    local2 = LocalState(
        allows=local.allows,
        manual=local.manual,
        followed_domains=local.followed_domains,
        never_auto_retract=local.never_auto_retract,
        managed=managed2,
    )
    assert run(opinions2, subs2, local2) == first
    assert run(opinions, subs, local) == first


@_PROPERTY
@given(_scenarios())
def test_property__a_local_allow_always_wins(scenario: Scenario) -> None:
    opinions, subs, local = scenario
    for change in run(opinions, subs, local).changes:
        if _covered(change.entity.key, local.allows):
            assert change.action is Action.REMOVE and Reason.LOCAL_ALLOW in change.reasons
            assert change.entity in local.managed


@_PROPERTY
@given(_scenarios())
def test_property__manual_decisions_never_change(scenario: Scenario) -> None:
    opinions, subs, local = scenario
    for change in run(opinions, subs, local).changes:
        if change.entity in local.manual:
            # Only a managed decision on the same entity is released, keeping what is enforced.
            assert change.entity in local.managed
            assert change.action in (Action.ORPHAN, Action.REMOVE)
            if not _covered(change.entity.key, local.allows):
                assert change.action is Action.ORPHAN and Reason.MANUAL in change.reasons


@_PROPERTY
@given(_scenarios())
def test_property__results_respect_caps_and_supporters(scenario: Scenario) -> None:
    opinions, subs, local = scenario
    caps = {s.id: s.max_policy.rank for s in subs}
    for change in run(opinions, subs, local).changes:
        if change.action in (Action.ADD, Action.UPDATE):
            assert change.policy is not None and change.owner is not None
            backers = [s for s in change.supporters if s.subscription_id == change.owner]
            assert backers and change.policy.rank <= caps[change.owner]
            assert all(s.policy.rank <= caps[s.subscription_id] for s in change.supporters)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=8), st.integers(), st.binary(max_size=4)),
    st.one_of(st.none(), st.text(max_size=8), st.integers(), st.lists(st.text(max_size=3), max_size=2)),
    st.one_of(st.text(max_size=6), st.sampled_from(list(Policy)), st.integers()),
)
def test_fuzz__opinion_constructor_raises_only_merge_input_error(key: object, filters: object, policy: object) -> None:
    try:
        made = Opinion(
            subscription_id="a",
            entity_kind="domain",
            entity_key=key,  # type: ignore[arg-type]
            policy=policy,  # type: ignore[arg-type]
            entry_id="e",
            filters=filters,  # type: ignore[arg-type]
        )
    except MergeInputError:
        return
    assert isinstance(made.entity_key, str) and made.entity_key
    assert isinstance(made.filters, frozenset)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.integers(-2, 5), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3)),
    st.one_of(st.sampled_from(["count", "pct", "x"]), st.integers()),
)
def test_fuzz__thresholds_raise_only_merge_input_error(value: object, unit: object) -> None:
    try:
        Thresholds(drop=value, unit=unit)  # type: ignore[arg-type]
    except MergeInputError:
        pass


def test_supporter_is_a_plain_tuple() -> None:
    sid, entry, counted, policy = Supporter("a", "e", True, Policy.DROP)
    assert (sid, entry, counted, policy) == ("a", "e", True, "drop")


# ---------------------------------------------------------------------------- fast path = reference path
#
# merge() takes a fast path (moderation/merge.py, "the fast path": opinions bucketed run by run,
# new decisions built without the general machinery). The module keeps the straightforward path
# as _merge_reference() for exactly this comparison: on seeded random workloads using every
# feature, both must return equal results (every change, every supporter, reason and flag) or
# raise the same error.

Workload = tuple[list[Opinion], list[Subscription], LocalState, Thresholds]


def _random_workload(seed: int, entities: int = 3000) -> Workload:
    rng = random.Random(seed)
    names = [f"s{i:02d}" for i in range(12)]
    groups = [None, None, None, "g1", "g2"]
    subs = [
        Subscription(
            id=name,
            trust_weight=rng.randint(1, 3),
            mode=rng.choice([Mode.AUTO, Mode.AUTO, Mode.AUTO, Mode.DRAFT]),
            max_policy=rng.choice([Policy.DROP, Policy.DROP, Policy.DROP, Policy.REJECT, Policy.FILTER, Policy.ACCEPT]),
            allowed_entity_kinds=frozenset(rng.choice([["domain"], ["domain"], ["domain", "actor"], ["actor"]])),
            allowed_labels=rng.choice([None, None, None, None, frozenset({"spam", "csam"})]),
            priority=rng.randint(0, 4),
            retraction_mode=rng.choice(list(RetractionMode)),
            independence_group=rng.choice(groups),
            feed_id=rng.choice([f"https://{name}.example/feed", f"https://{name}.example/feed", None]),
        )
        for name in names
    ]
    keys = [f"h{i}.example" for i in range(entities)] + [f"sub{i}.h{i}.example" for i in range(0, entities, 10)]
    actors = [f"https://h{i}.example/users/u" for i in range(0, entities, 7)]
    policies = [Policy.DROP, Policy.DROP, Policy.REJECT, Policy.FILTER, Policy.ACCEPT]
    opinions: list[Opinion] = []
    for position, sub_ in enumerate(subs):
        mixed = position % 2 == 1  # actor entries and expiring entries; the others' runs are plain
        chosen = rng.sample(keys, len(keys) * rng.randint(3, 7) // 10)
        chosen_actors = iter(rng.sample(actors, len(actors)))
        for n, key in enumerate(chosen):
            kind = "domain"
            if mixed and n % 13 == 0:
                kind, key = "actor", next(chosen_actors, key)
            derived: tuple[str, ...] = ()
            roll = rng.random()
            if roll < 0.10:
                derived = (f"https://{rng.choice(names)}/entries/{kind}/{key}",)  # another feed's entry
            elif roll < 0.13:
                derived = (f"https://{rng.choice(names)}.example/feed",)  # another feed
            elif roll < 0.16:
                derived = (f"https://upstream.example/{key}",)  # an unsubscribed upstream entry
            entry = f"https://{sub_.id}/entries/{kind}/{key}"
            if rng.random() < 0.03:
                entry = f"https://mirror.example/{key}"  # served verbatim by several feeds
            opinions.append(
                Opinion(
                    subscription_id=sub_.id,
                    entity_kind=kind,
                    entity_key=key.upper() if rng.random() < 0.02 else key,
                    policy=rng.choice(policies),
                    entry_id=entry,
                    filters=frozenset(rng.sample(["reject_media", "reject_reports"], rng.choice([0, 0, 0, 1, 2]))),
                    labels=frozenset(rng.sample(["spam", "csam", "hate"], rng.choice([0, 0, 1, 2]))),
                    derived_from=derived,
                    expires=rng.choice([None] * 12 + [NOW - timedelta(days=1), NOW + timedelta(days=1)])
                    if mixed
                    else None,
                )
            )
    if seed % 2:
        rng.shuffle(opinions)
    else:
        opinions.sort(key=lambda o: (o.subscription_id, o.entity_key))
    if seed % 3 == 0:  # runs of a subscription split and out of id order
        opinions = opinions[len(opinions) // 2 :] + opinions[: len(opinions) // 2]
    domains = rng.sample(keys, 80)
    owners = [*names, "gone"]
    managed = {
        Entity("domain", d): ManagedDecision(
            policy=rng.choice(policies),
            owner=rng.choice(owners),
            filters=frozenset(rng.choice([[], [], ["reject_media"]])),
        )
        for d in [*rng.sample(keys, entities // 5), *domains[:40:3]]  # some allowed, excluded, manual
    }
    managed.update(
        {Entity("actor", a): ManagedDecision(policy=Policy.REJECT, owner=rng.choice(owners)) for a in actors[:20]}
    )
    local = LocalState(
        allows=frozenset(domains[:10]),
        excludes=frozenset(domains[10:20]),
        manual={Entity("domain", d): rng.choice(policies) for d in domains[20:40]}
        | {Entity("actor", a): Policy.DROP for a in actors[20:25]},
        never_auto_retract=frozenset(Entity("domain", d) for d in domains[40:50]),
        never_auto_apply=frozenset(Entity("domain", d) for d in domains[50:60]),
        followed_domains=frozenset(domains[60:80]),
        followed_actors=frozenset(actors[25:40]),
        managed=managed,
    )
    if seed % 4 == 3:
        thresholds = Thresholds(drop=40, reject=30, filter=20, accept=10, unit=ThresholdUnit.PERCENT)
    else:
        thresholds = Thresholds(drop=rng.randint(2, 4), reject=rng.randint(2, 3), filter=2, accept=rng.randint(1, 2))
    return opinions, subs, local, thresholds


def _both(opinions: list[Opinion], subs: list[Subscription], local: LocalState, thresholds: Thresholds) -> MergeResult:
    fast = merge(opinions, subs, thresholds, local, now=NOW)
    reference = _merge_reference(opinions, subs, thresholds, local, now=NOW)
    assert fast.changes == reference.changes  # compared field by field, supporters included
    assert fast == reference
    return fast


@pytest.mark.parametrize("seed", range(8))
def test_fast_path__equals_the_reference_path_on_random_workloads(seed: int) -> None:
    opinions, subs, local, thresholds = _random_workload(seed)
    first = _both(opinions, subs, local, thresholds)
    kinds = {reason for change in first.changes for reason in change.reasons}
    assert {Reason.THRESHOLD, Reason.INDEPENDENCE, Reason.CAP, Reason.EXPIRED, Reason.LOCAL_ALLOW} <= kinds
    assert {Reason.MANUAL, Reason.RETRACTED, Reason.OWNER_GONE, Reason.DRAFT_MODE} <= kinds
    assert any(change.affects_follows for change in first.changes)
    # The next sync: what the first applied is now managed (a steady state with some churn).
    managed = dict(local.managed)
    for change in first.changes:
        if change.action in (Action.ADD, Action.UPDATE) and not change.draft:
            assert change.policy is not None and change.owner is not None
            managed[change.entity] = ManagedDecision(
                policy=change.policy, owner=change.owner, filters=change.filters, labels=change.labels
            )
    rng = random.Random(seed)
    second = [o for o in opinions if rng.random() > 0.05]  # some retractions
    _both(second, subs, LocalState(**{**_fields(local), "managed": managed}), thresholds)
    # All auto, no local state: nearly every entity takes the fast path.
    auto = [Subscription(**{**_fields(s), "mode": Mode.AUTO}) for s in subs]
    _both(opinions, auto, LocalState(), thresholds)


def _fields(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}  # type: ignore[attr-defined]


def test_fast_path__equals_the_reference_when_ids_and_feed_ids_collide() -> None:
    # A subscription id equal to another's feed id, references naming subscription ids, entry ids
    # equal to a feed id: the union-find's general case.
    subs = [
        sub("a", feed_id="https://b.example/feed"),
        sub("https://b.example/feed", independence_group="g"),
        sub("c", independence_group="g", feed_id="https://c.example/feed"),
        sub("d"),
        sub("e", trust_weight=3),
    ]
    rng = random.Random(5)
    opinions = []
    for s in subs:
        for i in range(300):
            if rng.random() < 0.6:
                entry = rng.choice([f"https://{s.id}/{i}", f"https://{s.id}/{i}", "https://c.example/feed"])
                derived = rng.choice([(), (), ("a",), (f"https://a/{i}",), ("https://c.example/feed",)])
                opinions.append(
                    op(
                        s.id,
                        f"x{i}.example",
                        rng.choice(["drop", "reject", "filter"]),
                        entry_id=entry,
                        derived_from=derived,
                    )
                )
    _both(opinions, subs, LocalState(), Thresholds())


def test_fast_path__raises_what_the_reference_raises() -> None:
    subs = [sub("a"), sub("b")]
    twice = [op("b", "y.example"), op("a", "z.example", entry_id="1"), op("a", "Z.example", entry_id="2")]
    twice += [op("a", "x.example", entry_id="3"), op("a", "x.example.", entry_id="4")]
    for opinions in (twice, [*twice[:1], op("q", "x.example"), op("r", "x.example")]):
        with pytest.raises(MergeInputError) as fast:
            merge(opinions, subs, Thresholds(), LocalState(), now=NOW)
        with pytest.raises(MergeInputError) as reference:
            _merge_reference(opinions, subs, Thresholds(), LocalState(), now=NOW)
        assert str(fast.value) == str(reference.value)


def test_merge__leaves_the_garbage_collector_as_it_found_it() -> None:
    opinions = [op(n, f"h{i}.example") for n in "abc" for i in range(50)]
    assert gc.isenabled()
    run(opinions, ABC)
    assert gc.isenabled()
    gc.disable()
    try:
        run(opinions, ABC)
        assert not gc.isenabled()
    finally:
        gc.enable()
    # Objects the application froze stay frozen (the merge promotes its own only when none are).
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        run(opinions, ABC)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
