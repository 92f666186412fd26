"""Every shared parity fixture (ppd, moge2, ppvd) passes through the harness, as a user would run it.

This includes the whole official video procedure of ``video_pipeline_small`` (32 frames, 3 windows at
512x512) fed frame by frame through ``push``/``flush`` — about 1.5 min on 2 CPU cores.
"""
import subprocess
import sys

import pytest

from .conftest import FIXTURES, REPO


@pytest.mark.needs_shared("fixtures")
def test_all_shared_fixtures_pass():
    out = subprocess.run([sys.executable, "-m", "ppd_ros.parity", str(FIXTURES)], capture_output=True, text=True,
                         cwd=REPO, timeout=1200)
    lines = out.stdout.strip().splitlines()
    failed = [ln for ln in lines if ln.startswith("FAIL")]
    assert out.returncode == 0 and not failed, "\n".join(failed) or out.stderr[-2000:]
    families = {ln.split()[1].split(":")[0] for ln in lines if ln.startswith("PASS")}
    # every fixture folder under shared/fixtures reported at least one passing output
    folders = {p.parent.name for p in FIXTURES.rglob("meta.json")}
    assert folders <= families, folders - families
    assert lines[-1].endswith(" passed, 0 failed")
