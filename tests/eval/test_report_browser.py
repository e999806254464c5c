"""report.html as a person sees it: rendered by headless Chromium, with its plots."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from medmllm.eval.runner import EvalOptions, run_eval
from tests.eval.test_runner import _task, position_biased


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "headless Chromium not installed (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.mark.integration
def test_report_renders_with_plots_in_headless_chromium(tmp_path: Path, mcqa_file: Path) -> None:
    out = tmp_path / "run"
    run_eval(
        [_task(tmp_path, mcqa_file)],
        position_biased(),
        EvalOptions(debias=True),
        out_dir=out,
        cache_path=":memory:",
    )
    html = (out / "report.html").read_text()
    plots = re.findall(r"<img[^>]+src=\"data:image/png;base64,", html)
    assert len(plots) >= 2, "expected at least the accuracy and reliability plots"
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            (out / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), result.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((64, 100)).getcolors(64 * 100)
    assert colours is not None and len(colours) > 20  # a rendered page, not a blank canvas
