"""The worked example of docs/research.md runs as documented and draws its plot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_worked_example_records_a_session_and_plots_it(tmp_path: Path) -> None:
    out = tmp_path / "session.png"
    proc = subprocess.run(
        [sys.executable, str(REPO / "docs" / "examples" / "session_plot.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # e.g. "wrote …/session.png (4380 heart-rate samples, 438 estimates, 3 alerts)"
    summary = proc.stdout.splitlines()[-1]
    assert "4380 heart-rate samples, 438 estimates" in summary
    alerts = int(summary.rsplit(", ", 1)[1].split()[0])
    assert alerts >= 2  # at least a caution and a cool-down on this hot day
    assert (REPO / "docs" / "examples" / "session.png").is_file()  # the one the docs show
    assert "](examples/session.png)" in (REPO / "docs" / "research.md").read_text()
