"""The report of one rescoring invocation: figures as JSON, Markdown and a PNG chart.

``rows_per_s`` counts the whole job (actor start-up included);
``rows_per_s_while_calling`` only the span from the first to the last model request.
Budget adherence is measured, not assumed: requests per minute achieved = requests sent
(retries included) / the wall-clock span from the first to the last request of the invocation.
Tokens are estimates (characters / 3, :data:`~pipelines.rescore.rescorer.CHARS_PER_TOKEN`).
The chart labels categories by number (``L1``…): the Markdown maps them to their Korean names, so
the PNG needs no Hangul font.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.rescore.options import Plan
from pipelines.rescore.worker import RowReport

NONE = "none"


@dataclass
class RescoreReport:
    plan: Plan
    selected: int
    """Scans the selection matched (finished ones included)."""
    rows: list[RowReport] = field(default_factory=list)
    already_done: int = 0
    """Finished by an earlier invocation of the run: skipped, no model call."""
    elapsed_s: float = 0.0
    budget_rpm: int | None = None
    budget_tpm: int | None = None
    dry_run: bool = False
    message: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def rescored(self) -> list[RowReport]:
        return [r for r in self.rows if r.status == "done"]

    @property
    def changed(self) -> list[RowReport]:
        return [r for r in self.rescored if r.changed]

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rows)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.rows)

    @property
    def request_span_s(self) -> float:
        starts = [r.first_request_at for r in self.rows if r.first_request_at]
        ends = [r.last_request_at for r in self.rows if r.last_request_at]
        return max(ends) - min(starts) if starts and ends else 0.0

    @property
    def achieved_rpm(self) -> float | None:
        span = self.request_span_s
        return self.requests / span * 60 if span > 0 else None

    def confusion(self) -> Counter[tuple[str, str]]:
        return Counter((r.previous_label or NONE, r.current_label or NONE) for r in self.rescored)

    def reward_changes(self) -> Counter[tuple[str, str]]:
        return Counter((r.previous_reward or NONE, r.current_reward or NONE) for r in self.rescored)

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready data."""
        achieved = self.achieved_rpm
        rescored = len(self.rescored)
        return {
            "run_id": self.plan.run_id,
            "stages": list(self.plan.stages),
            "model": self.plan.model,
            "rules_version": self.plan.rules_version,
            "dry_run": self.dry_run,
            "message": self.message,
            "selected": self.selected,
            "already_done": self.already_done,
            "rescored": rescored,
            "changed": len(self.changed),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "requests": self.requests,
            "estimated_tokens": self.tokens,
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": round(rescored / self.elapsed_s, 1) if self.elapsed_s else None,
            "request_span_s": round(self.request_span_s, 3),
            "rows_per_s_while_calling": (
                round(rescored / self.request_span_s, 1) if self.request_span_s else None
            ),
            "budget_rpm": self.budget_rpm,
            "budget_tpm": self.budget_tpm,
            "achieved_rpm": round(achieved, 1) if achieved is not None else None,
            "budget_adherence": (
                round(achieved / self.budget_rpm, 4) if achieved and self.budget_rpm else None
            ),
            "label_changes": [
                {"from": old, "to": new, "count": n}
                for (old, new), n in sorted(self.confusion().items())
                if old != new
            ],
            "reward_changes": [
                {"from": old, "to": new, "count": n}
                for (old, new), n in sorted(self.reward_changes().items())
                if old != new
            ],
        }

    def write(self, folder: Path) -> tuple[Path, Path]:
        """``report.md``, ``report.png`` and ``report.json`` in ``folder`` (created)."""
        folder.mkdir(parents=True, exist_ok=True)
        labels = _label_index(self.confusion())
        chart = folder / "report.png"
        draw_chart(self, labels, chart)
        markdown = folder / "report.md"
        markdown.write_text(to_markdown(self, labels, chart.name), encoding="utf-8")
        (folder / "report.json").write_text(
            json.dumps(self.summary(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        return markdown, chart


def _label_index(confusion: Counter[tuple[str, str]]) -> dict[str, str]:
    names = sorted({name for pair in confusion for name in pair})
    return {name: f"L{i}" for i, name in enumerate(names, start=1)}


def to_markdown(report: RescoreReport, labels: dict[str, str], chart: str) -> str:
    s = report.summary()
    lines = [
        f"# Rescoring run `{s['run_id']}`",
        "",
        f"Stages {', '.join(s['stages'])}; model {s['model'] or 'each scan’s own'}; "
        f"rules {s['rules_version']}.",
        "",
    ]
    if s["message"]:
        lines += [f"> {s['message']}", ""]
    lines += [
        "| figure | value |",
        "|---|---|",
        *(
            f"| {key} | {s[key] if s[key] is not None else '—'} |"
            for key in (
                "selected",
                "already_done",
                "rescored",
                "changed",
                "failed",
                "requests",
                "estimated_tokens",
                "elapsed_s",
                "rows_per_s",
                "budget_rpm",
                "achieved_rpm",
                "budget_adherence",
            )
        ),
        "",
        f"![old → new labels, reward changes, usage, budget]({chart})",
        "",
        "## Labels (old → new)",
        "",
        "| old | new | scans |",
        "|---|---|---|",
        *(
            f"| {labels[old]} {old} | {labels[new]} {new} | {n} |"
            for (old, new), n in sorted(report.confusion().items())
        ),
        "",
        "## Rewards (old → new)",
        "",
        "| old | new | scans |",
        "|---|---|---|",
        *(f"| {old} | {new} | {n} |" for (old, new), n in sorted(report.reward_changes().items())),
        "",
    ]
    failed = [r for r in report.rows if r.status == "failed"]
    if failed:
        lines += ["## Failed rows (retried by the next invocation of the run)", ""]
        lines += [f"- `{r.job_id}`: {r.error}" for r in failed[:20]]
        lines.append("")
    return "\n".join(lines)


def draw_chart(report: RescoreReport, labels: dict[str, str], path: Path) -> None:
    """Four panels: label confusion, reward changes, requests and tokens, budget adherence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    _confusion_panel(axes[0][0], report.confusion(), labels)
    _bar_panel(
        axes[0][1],
        "Reward (old → new)",
        [f"{o}→{n}" for o, n in report.reward_changes()],
        list(report.reward_changes().values()),
    )
    _bar_panel(
        axes[1][0],
        "Usage (log scale)",
        ["requests", "tokens (est.)"],
        [report.requests, report.tokens],
    )
    if report.requests:
        axes[1][0].set_yscale("log")
    achieved = report.achieved_rpm or 0.0
    if report.budget_rpm:
        _bar_panel(
            axes[1][1],
            "Requests per minute",
            ["budget", "achieved"],
            [report.budget_rpm, round(achieved, 1)],
        )
    else:
        _bar_panel(axes[1][1], "Requests per minute (no budget)", ["achieved"], [round(achieved)])
    figure.suptitle(f"Rescoring {report.plan.run_id}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _confusion_panel(
    axis: Any, confusion: Counter[tuple[str, str]], labels: dict[str, str]
) -> None:
    names = list(labels)
    grid = [[confusion.get((old, new), 0) for new in names] for old in names]
    axis.set_title("Label: old (rows) → new (columns)")
    if not names:
        axis.text(0.5, 0.5, "no rows", ha="center", va="center")
        return
    axis.imshow(grid, cmap="Blues")
    ticks = list(range(len(names)))
    axis.set_xticks(ticks, [labels[n] for n in names], rotation=90)
    axis.set_yticks(ticks, [labels[n] for n in names])
    peak = max(max(row) for row in grid)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value:
                colour = "white" if value > peak / 2 else "black"
                axis.text(j, i, str(value), ha="center", va="center", fontsize=8, color=colour)


def _bar_panel(axis: Any, title: str, names: Sequence[str], values: Sequence[float]) -> None:
    axis.set_title(title)
    if not names:
        axis.text(0.5, 0.5, "no rows", ha="center", va="center")
        return
    bars = axis.bar(range(len(names)), values)
    axis.set_xticks(range(len(names)), names, rotation=30, ha="right")
    axis.bar_label(bars)
