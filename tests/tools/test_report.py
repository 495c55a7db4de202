"""``kerasapps report``: one self-contained HTML page, rendered here by headless Chromium, with every picture shown.

Two short runs on the real MNIST digits (different settings), evaluated, then reported alone and side by side.
Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it); where it cannot be installed the
rendering test is skipped with that reason, except under ``CI=true``, where it fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

import kerasapps
from kerasapps.cli.main import cli

pytestmark = [pytest.mark.realdata]


def chromium() -> str:
    found = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                  if shutil.which(name)), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and no chromium: .ci/run installs Debian's chromium package")
        pytest.skip("headless Chromium is not installed here (apt-get install chromium); the report is not rendered")
    return found


def render(page) -> str:
    """The page's DOM after Chromium loaded it (scripts run), as text."""
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def runs(real_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made = []
    for name, rate in (("fast", 3e-3), ("slow", 1e-4)):
        run = kerasapps.train("mlp_mnist", data_dir=real_data_dir, run_dir=root / name, verbose=0, epochs=1,
                              set={"learning_rate": rate, "units": 64})
        kerasapps.evaluate(run.run_dir, verbose=0)
        made.append(run.run_dir)
    return made


def test_the_report_renders_every_picture_and_table(runs, tmp_path):
    printed = CliRunner().invoke(cli, ["report", str(runs[0])])
    assert printed.exit_code == 0, printed.output
    page = runs[0] / "report.html"
    assert printed.stdout.strip() == f"wrote {page}"
    source = page.read_text(encoding="utf-8")
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", source)  # nothing fetched: it travels as one file
    dom = render(page)
    counted = re.search(r'id="pictures"[^>]*data-shown="(\d+)"[^>]*data-total="(\d+)"', dom)
    assert counted, "the page's script did not run"
    assert counted.group(1) == counted.group(2) and int(counted.group(2)) >= 3  # curves, matrix, mistakes
    for text in ("kerasapps report: mlp_mnist (fast)", "Configuration", "learning_rate", "Training",
                 "Evaluation: the test split (10000 examples)", "balanced accuracy", "The worst mistakes",
                 "always answering"):
        assert text in dom, text
    assert re.search(r"<td class=\"?text\"?>7</td>(<td>[0-9.]+</td>){3}<td>1028</td>", dom)  # 1,028 sevens in the test


def test_several_runs_side_by_side(runs, tmp_path):
    page = kerasapps.report(runs, out=tmp_path / "both.html")
    dom = render(page)
    assert "The runs side by side" in dom and "fast" in dom and "slow" in dom
    row = re.search(r"<tr><td class=\"?text\"?>learning_rate</td><td>([^<]+)</td><td>([^<]+)</td></tr>", dom)
    assert row and float(row.group(1)) == pytest.approx(3e-3) and float(row.group(2)) == pytest.approx(1e-4)
    assert "test balanced_accuracy" in dom
    counted = re.search(r'data-shown="(\d+)"[^>]*data-total="(\d+)"', dom)
    assert counted and counted.group(1) == counted.group(2) and int(counted.group(2)) >= 6


def test_a_folder_that_is_no_run_is_one_line(tmp_path):
    printed = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert printed.exit_code == 2 and printed.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not a run directory (no config.yaml)"]
