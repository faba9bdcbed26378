"""How the CLI shows job runs and sweep results (rich)."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from workers.jobs import JobRun, RunStatus

_STYLE = {
    RunStatus.OK: "green",
    RunStatus.SKIPPED: "yellow",
    RunStatus.FAILED: "bold red",
    RunStatus.LOCK_LOST: "bold yellow",
}

_HEADLINE = ("demoted", "purged", "marked", "state", "embedded")
_QUIET = {"message", "pending", "detail", "current", "head", "reason", "seconds", "complete"}


def summary(result: dict[str, Any]) -> str:
    """``key=value`` pairs of a result, the headline count first, lists and prose left out."""
    ordered = [k for k in _HEADLINE if k in result]
    ordered += [k for k in result if k not in ordered and k not in _QUIET]
    parts = []
    for key in ordered:
        value = result[key]
        if isinstance(value, list | dict) or value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.3f}"
        parts.append(f"{key}={value}")
    if result.get("complete") is False:
        parts.append("(time budget spent; the next run goes on)")
    return " ".join(parts)


def run_line(run: JobRun) -> Text:
    """One line for a job run: time, job, outcome, counts, duration and trigger."""
    line = Text()
    line.append(run.finished_at.strftime("%H:%M:%S"), style="dim")
    line.append("  ")
    line.append(f"{run.name:<26}", style="bold")
    line.append(f"{run.status.value:<8}", style=_STYLE.get(run.status, ""))
    if run.status is RunStatus.FAILED:
        line.append(run.error or "", style="red")
    else:
        line.append(summary(run.result))
        message = run.result.get("message") or run.result.get("reason")
        if message:
            line.append(f"  {message}", style="italic")
    line.append(f"  {run.duration_seconds:.2f}s", style="dim")
    if run.trigger != "schedule":
        line.append(f"  ({run.trigger})", style="dim")
    return line
