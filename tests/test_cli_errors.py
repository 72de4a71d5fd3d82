"""Bad input: one line naming the input and the problem, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkers.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["check", "nosuch"], "selector 'nosuch': no model, invariant or proof of that name"),
        (["check", "--engine", "fuzz"], "--engine 'fuzz': unknown engine 'fuzz'"),
        (["check", "--seed", "-1"], "'-1' must not be negative"),
        (["check", "--seed", "x"], "'x' is not a whole number"),
        (["check", "-n", "0"], "'0' must be at least 1"),
        (["check", "--profile", "huge"], "invalid choice: 'huge'"),
        (["explore", "buddy", "--max-states", "0"], "'0' must be at least 1"),
        (["explore", "buddy", "--graph", "g.png"], "--graph g.png: the file name must end in .dot or .graphml"),
        (["replay", "missing.json"], "missing.json"),
        (["mutants", "nosuch"], "selector 'nosuch': no mutant or model of that name"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("kinv: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "reports").exists()


def test_reports_path_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").write_text("")
    assert main(["check", "buddy", "--reports", "out"]) == 2
    assert "--reports out: not a directory" in capsys.readouterr().err
