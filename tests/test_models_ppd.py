"""PPD models: full-size keys/shapes equal the manifests; fixture weights reproduce fixture outputs."""
import subprocess
import sys

import pytest
import torch

from ppd_ros.config import preset
from ppd_ros.models import DA2SemanticEncoder, DiT
from ppd_ros.parity import discover_handlers, find_fixtures, run_fixture

from .conftest import FIXTURES, REPO, manifest


def _meta_shapes(build, prefix: str) -> dict[str, list[int]]:
    with torch.device("meta"):
        model = build()
    return {prefix + k: list(v.shape) for k, v in model.state_dict().items()}


def test_full_size_dit_matches_manifest():
    ours = _meta_shapes(lambda: DiT(preset("ppd_dit")), "dit.")
    assert ours == manifest("ppd_dit.json")
    n = sum(torch.Size(s).numel() for s in ours.values())
    print(f"PPD DiT parameters: {n:,}")
    assert n == 499_842_112


def test_full_size_da2_matches_manifest_minus_depth_head():
    ours = _meta_shapes(lambda: DA2SemanticEncoder(preset("da2_vitl")), "")
    want = {k: v for k, v in manifest("da2_vitl.json").items() if not k.startswith("depth_head.")}
    assert ours == want
    n = sum(torch.Size(s).numel() for s in ours.values())
    print(f"DA2 ViT-L parameters: {n:,}")
    assert n == 304_368_640


@pytest.mark.numeric
@pytest.mark.needs_shared("fixtures/ppd")
def test_every_ppd_fixture_passes():
    discover_handlers()
    paths = list(find_fixtures([FIXTURES / "ppd"]))
    assert len(paths) >= 4
    failures = [(p.name, c) for p in paths for c in run_fixture(p) if not c.passed]
    assert not failures, failures


@pytest.mark.needs_shared("fixtures/ppd/preprocess")
def test_parity_cli_summary_and_exit_code(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ppd_ros.parity", str(FIXTURES / "ppd" / "preprocess")],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")
    bad = tmp_path / "weird"
    bad.mkdir()
    (bad / "meta.json").write_text('{"fixture": "no_such_kind"}')
    out = subprocess.run([sys.executable, "-m", "ppd_ros.parity", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 1
    assert "unknown fixture kind 'no_such_kind'" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "0 passed, 1 failed"
