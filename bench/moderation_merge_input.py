"""Inputs for the merge benchmark (bench/moderation_bench.py): ``feeds`` subscriptions of
``entries`` current opinions each over overlapping domains, as a sync would hold them after
parsing and verifying the entries: 60,000 distinct domains, each named by several feeds with
policies drawn per feed, two feeds declared one independence group, one feed citing another's
entries (derivedFrom), weights 1-3, auto mode, no local decisions yet (the first merge, when
every decision is new, is the most work)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from moderation.merge import LocalState, Mode, Opinion, Policy, Subscription, Thresholds, merge

DOMAINS = 60_000
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Inputs:
    opinions: list[Opinion]
    subscriptions: list[Subscription]


def build_inputs(feeds: int, entries: int, seed: int = 11) -> Inputs:
    rng = random.Random(seed)
    subscriptions = [
        Subscription(
            id=f"feed{i}",
            trust_weight=1 + i % 3,
            mode=Mode.AUTO,
            priority=i,
            independence_group="mirrors" if i in (0, 1) else None,
        )
        for i in range(feeds)
    ]
    policies = [Policy.DROP, Policy.DROP, Policy.FILTER, Policy.REJECT, Policy.ACCEPT]
    opinions: list[Opinion] = []
    for i in range(feeds):
        chosen = rng.sample(range(DOMAINS), min(entries, DOMAINS))
        while len(chosen) < entries:  # more entries than domains: actor entries would follow; repeat domains
            chosen.append(rng.randrange(DOMAINS))
        for n, d in enumerate(chosen[:entries]):
            derived = (f"feed0/e{d}",) if i == 2 and n % 2 == 0 else ()
            opinions.append(
                Opinion(
                    subscription_id=f"feed{i}",
                    entity_kind="domain",
                    entity_key=f"host{d}.example",
                    policy=rng.choice(policies),
                    entry_id=f"feed{i}/e{d}",
                    filters=frozenset({"reject-media"}) if d % 7 == 0 else frozenset(),
                    derived_from=derived,
                )
            )
    return Inputs(opinions, subscriptions)


def run_merge(inputs: Inputs) -> int:
    result = merge(inputs.opinions, inputs.subscriptions, Thresholds(), LocalState(), now=NOW)
    return len(result.changes)
