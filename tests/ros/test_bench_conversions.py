"""Smoke test of bench/bench_conversions.py at a tiny size: it runs and its JSON line has every figure."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_conversions.py"


def test_bench_conversions_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("_bench_conversions", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--repeat", "1", "--warmup", "0", "--sizes", "16x8"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(json.dumps(res))
    figures = printed["sizes"]["16x8"]
    for key in ("image_to_rgb.yuv422", "image_to_rgb.mono16", "depth_to_image_msg.16UC1", "cloud_to_msg.xyzrgb",
                "msg_to_cloud.xyzrgb", "compressed_to_rgb.jpeg90"):
        assert figures[key] >= 0.0, key
