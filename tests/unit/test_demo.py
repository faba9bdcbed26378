"""``hearth demo`` tells the tier story and a vector search, and the facts it prints hold."""

from __future__ import annotations

from rich.console import Console

from workers.cli.demo import run_demo


def test_demo_story_reports_demotion_promotion_purge_and_search() -> None:
    console = Console(record=True, width=200)
    run_demo(console)
    text = console.export_text()
    assert "2 session(s) idle for 30+ minutes moved to cold" in text
    assert "promotes it to hot" in text
    assert "get() returns None even before the purge runs" in text
    assert "the max-age purge removes 1 session(s)" in text
    search = text.split("query:")[1]
    # The refund rule must rank first for a refund question.
    assert search.index("refund") < search.index("greeting")
    assert search.index("refund") < search.index("shipping")
