"""The report's figures, Markdown and chart."""

from __future__ import annotations

from pathlib import Path

from pipelines.rescore.options import Plan
from pipelines.rescore.report import RescoreReport
from pipelines.rescore.worker import RowReport

PLAN = Plan(run_id="rs-1", stages=("vision", "answer"), model=None, rules_version="v1")


def _row(i: int, old: str, new: str, reward: str | None, at: float) -> RowReport:
    return RowReport(
        job_id=f"j{i}",
        status="done",
        previous_label=old,
        current_label=new,
        current_reward=reward,
        changed="label" if old != new else "",
        requests=2,
        tokens=100,
        first_request_at=at,
        last_request_at=at + 0.5,
    )


def test_the_report_measures_changes_usage_and_the_achieved_rate(tmp_path: Path) -> None:
    rows = [
        _row(i, "재활용폐기물/플라스틱류", "재활용폐기물/무색페트병", "char-petty", i + 1)
        for i in range(3)
    ]
    rows.append(
        _row(3, "일반종량제폐기물/일반종량제폐기물", "일반종량제폐기물/일반종량제폐기물", None, 4)
    )
    rows.append(RowReport(job_id="j4", status="failed", error="model down"))
    report = RescoreReport(
        PLAN, selected=6, rows=rows, already_done=1, elapsed_s=2.0, budget_rpm=480
    )
    summary = report.summary()
    assert (summary["rescored"], summary["changed"], summary["failed"]) == (4, 3, 1)
    assert summary["requests"] == 8
    assert summary["estimated_tokens"] == 400
    assert summary["achieved_rpm"] == round(8 / 3.5 * 60, 1)  # 8 requests, t=1 to t=4.5
    assert summary["budget_adherence"] == round(8 / 3.5 * 60 / 480, 4)
    assert summary["label_changes"] == [
        {"from": "재활용폐기물/플라스틱류", "to": "재활용폐기물/무색페트병", "count": 3}
    ]
    assert summary["reward_changes"] == [{"from": "none", "to": "char-petty", "count": 3}]
    markdown, chart = report.write(tmp_path / "out")
    text = markdown.read_text(encoding="utf-8")
    assert "L3 재활용폐기물/플라스틱류" in text
    assert "model down" in text
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_report_still_writes_its_files(tmp_path: Path) -> None:
    report = RescoreReport(PLAN, selected=0, message="nothing to rescore")
    markdown, chart = report.write(tmp_path)
    assert "nothing to rescore" in markdown.read_text(encoding="utf-8")
    assert chart.exists()
    assert report.summary()["rows_per_s"] is None
