"""``hearth demo``: a short scripted story on the in-memory stores, told as it happens.

The in-memory stores are the reference every backend is tested against, so the story shows
exactly what the production stores do: sessions saved hot, idle ones demoted (never
deleted), a cold one promoted on access, old ones purged, and a vector search over rules.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from stores.common.clock import ManualClock
from stores.config import Agent, InMemoryConfigStore, Rule
from stores.sessions import InMemorySessionStore, Session, SessionStore

# A toy embedding for the story: one dimension per group of related words. Real deployments
# embed with a provider (see the embedding backfill); the search itself is the same.
CONCEPTS = [
    {"refund", "money", "back", "return", "reimburse"},
    {"parcel", "ship", "ships", "shipping", "where", "delivery", "track"},
    {"hello", "hi", "morning", "good"},
    {"order", "purchase", "bought"},
    {"cancel", "stop", "subscription"},
    {"password", "login", "account"},
]
DEMO_DIMENSIONS = len(CONCEPTS) + 1


def _embed(text: str) -> list[float]:
    """Count concept words, add a small constant so no text is the zero vector, normalize."""
    words = {w.strip(".,?!'").lower() for w in text.split()}
    vec = [float(len(words & group)) for group in CONCEPTS] + [0.1]
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec]


def _tiers(console: Console, store: SessionStore, sessions: dict[str, Session]) -> None:
    table = Table(show_header=True, header_style="bold")
    table.add_column("session")
    table.add_column("tier")
    for name, session in sessions.items():
        tier = store.tier_of(session.tenant_id, session.id)
        table.add_row(name, tier.value if tier else "(gone)")
    console.print(table)


def run_demo(console: Console | None = None) -> None:
    """Tell the story on fresh in-memory stores with a clock the story moves by hand."""
    console = console or Console()
    clock = ManualClock(datetime(2030, 1, 7, 9, 0, tzinfo=UTC))
    store = InMemorySessionStore(
        hot_ttl=timedelta(minutes=30), max_age=timedelta(days=7), clock=clock
    )
    tenant, agent = uuid.uuid4(), uuid.uuid4()

    console.rule("[bold]hearth demo[/bold]: the two-tier session store")
    console.print(
        "Sessions live in a [bold]hot[/bold] tier while active; after 30 minutes idle the "
        "demotion sweep moves them to the [bold]cold[/bold] tier; after 7 days they are purged."
    )
    sessions: dict[str, Session] = {}

    def new_session(name: str) -> Session:
        return store.save(
            Session(tenant_id=tenant, agent_id=agent, channel="web", user_channel_id=name)
        )

    sessions["carol"] = new_session("carol")
    console.print(f"\n[green]{clock():%a %H:%M}[/green] carol starts a conversation")
    clock.advance(days=6)
    sessions["alice"] = new_session("alice")
    sessions["bob"] = new_session("bob")
    console.print(f"[green]{clock():%a %H:%M}[/green] six days later, alice and bob start theirs")
    _tiers(console, store, sessions)

    clock.advance(minutes=20)
    sessions["alice"] = store.save(sessions["alice"].model_copy(update={"variables": {"n": 1}}))
    console.print(f"\n[green]{clock():%a %H:%M}[/green] alice sends a message: her session is busy")

    clock.advance(minutes=15)
    demoted = store.demote_idle()
    console.print(
        f"\n[green]{clock():%a %H:%M}[/green] the demotion sweep runs: {demoted} session(s) idle "
        "for 30+ minutes moved to cold (demoted, never deleted)"
    )
    _tiers(console, store, sessions)

    bob = store.get(tenant, sessions["bob"].id)
    assert bob is not None
    console.print(
        f"\n[green]{clock():%a %H:%M}[/green] bob comes back: get() returns his session "
        f"(version {bob.version}) and promotes it to hot in the same call"
    )
    _tiers(console, store, sessions)

    clock.advance(days=1)
    gone = store.get(tenant, sessions["carol"].id)
    console.print(
        f"\n[green]{clock():%a %H:%M}[/green] carol's session is now over 7 days old: get() "
        f"returns {gone!r} even before the purge runs"
    )
    purged = store.purge_expired()
    console.print(f"the max-age purge removes {purged} session(s) from every tier and index")
    _tiers(console, store, sessions)
    stats = store.stats()
    console.print(
        f"tier stats: hot={stats.hot_sessions} ({stats.hot_bytes} B), "
        f"cold={stats.cold_sessions} ({stats.cold_bytes} B)"
    )

    console.rule("[bold]vector search over rules[/bold]")
    config = InMemoryConfigStore(dimensions=DEMO_DIMENSIONS, clock=clock)
    bot = config.create_agent(Agent(tenant_id=tenant, name="support-bot"))
    for name, condition in [
        ("refund", "customer asks for a refund of an order"),
        ("shipping", "customer asks where the parcel is and when it ships"),
        ("greeting", "customer says hello or good morning"),
    ]:
        config.create_rule(
            Rule(
                tenant_id=tenant,
                agent_id=bot.id,
                name=name,
                condition_text=condition,
                embedding=_embed(condition),
                embedding_model="demo-trigrams",
                action_type="reply",
            )
        )
    query = "I want my money back for this order"
    console.print(f"query: [italic]{query!r}[/italic]")
    table = Table("rule", "score", "condition")
    for rule, score in config.vector_search_rules(tenant, bot.id, _embed(query), limit=3):
        table.add_row(rule.name, f"{score:.3f}", rule.condition_text)
    console.print(table)
    console.print(
        "\nThe same behaviours run against Redis and PostgreSQL in the contract tests; "
        "`make run` starts the real thing."
    )
