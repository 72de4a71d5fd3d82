"""``pytest --kinv`` adds kinv's checks to a user's own test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, capture_output=True, text=True
    )


def test_kinv_items_run_beside_the_users_tests(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    assert 1 + 1 == 2\n")
    done = run_pytest(
        "--kinv", "--kinv-select", "buddy.find_buddy_pfn_involution", "--kinv-engine", "prove", "-v", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_mine.py::test_mine PASSED" in done.stdout
    assert "kinv::buddy::prove::buddy.find_buddy_pfn_involution PASSED" in done.stdout
    assert not (tmp_path / "reports").exists()  # reports only where --kinv-reports asks


def test_without_kinv_the_plugin_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    pass\n")
    done = run_pytest("-v", cwd=tmp_path)
    assert done.returncode == 0 and "1 passed" in done.stdout and "buddy" not in done.stdout


def test_a_bad_selector_is_a_usage_error(tmp_path: Path) -> None:
    done = run_pytest("--kinv", "--kinv-select", "nosuch", cwd=tmp_path)
    assert done.returncode == 4  # pytest's usage-error code
    assert "selector 'nosuch': no model, invariant or proof of that name" in done.stderr
