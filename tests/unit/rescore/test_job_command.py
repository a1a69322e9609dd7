"""The job's command refuses bad input with exit code 2, naming it, before it connects."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.rescore.job import job_app


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--budget-rpm", "0"], "--budget-rpm"),
        (["--budget-tpm", "-1"], "--budget-tpm"),
        (["--model", "gpt-nope"], "gpt-nope"),
        (["--rules-version", "1999.1"], "1999.1"),
        (["--stages", "vision,smell"], "smell"),
        (["--filter", "colour=red"], "colour=red"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_input_is_named_and_refused_with_exit_2(args: list[str], named: str) -> None:
    result = CliRunner().invoke(job_app(), args, env={"ECO2_DB__URL": None})
    assert result.exit_code == 2, result.output
    assert named in result.stderr
