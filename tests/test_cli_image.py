"""The offline ``ppd-ros image`` command."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from .conftest import FIXTURES, REAL, REPO

W = FIXTURES / "ppd" / "e2e_small" / "weights.safetensors"


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ppd_ros.cli", "image", *args], capture_output=True,
                          text=True, cwd=REPO)


@pytest.mark.needs_shared("fixtures/ppd/e2e_small", "data/real/mrpt_kinect_bookshelf")
def test_image_command_writes_npy_and_png(tmp_path, monkeypatch):
    # the fixture-size model through the same code path as the official checkpoints
    from ppd_ros.cli import main
    import ppd_ros.cli.image as image_cli
    from ppd_ros.config import preset
    from ppd_ros.pipelines import PPDPipeline

    def small(args):
        from ppd_ros.config import InferenceConfig
        return PPDPipeline.from_checkpoints(args.dit, args.semantics, InferenceConfig(steps=2, target_area=128 * 96),
                                            preset("fixture_ppd_e2e_dit"), preset("fixture_da2_vit_small"))
    monkeypatch.setattr(image_cli, "load_pipeline", small)
    src = REAL / "mrpt_kinect_bookshelf" / "rgb.png"
    rc = main(["image", str(src), "--dit", str(W), "--semantics", str(W), "--out", str(tmp_path)])
    assert rc == 0
    depth = np.load(tmp_path / "rgb_depth.npy")
    assert depth.shape == cv2.imread(str(src)).shape[:2]
    png = cv2.imread(str(tmp_path / "rgb_depth.png"))
    assert png.shape == (*depth.shape, 3) and png.std() > 0


def test_missing_checkpoints_are_a_clear_error(tmp_path):
    out = _run("x.png", "--out", str(tmp_path))
    assert out.returncode == 2 and "give both --dit and --semantics" in out.stderr
    out = _run("x.png", "--dit", str(tmp_path / "no.pth"), "--semantics", str(tmp_path / "no.pth"))
    assert out.returncode == 2 and "checkpoint not found" in out.stderr
    assert "Traceback" not in out.stderr
