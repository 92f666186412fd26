"""CPU smoke test of bench/bench_video.py and bench/bench_metric.py: tiny sizes, the JSON line's keys.

No timings are asserted (shared CPU); only that the scripts run end to end and report every figure.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .bench_loader import last_json, load


def test_video_bench(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rec = load("bench_video").main(["--height", "32", "--width", "48", "--resolution", "32", "--frames", "29",
                                    "--steps", "2", "--warmup", "0", "--threads", "1",
                                    "--json-out", str(tmp_path / "r.jsonl")])
    printed = last_json(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "r.jsonl").read_text())
    assert printed["bench"] == "video" and set(printed["modes"]) == {"exact", "stream"}
    for key in ("window", "window_dit_step", "frame", "frame_dit_step", "refpass"):
        assert printed["flops"][key] > 0
    for key in ("peak_rss_mb", "device", "torch", "resolution", "steps"):
        assert key in printed
    ex, st = rec["modes"]["exact"], rec["modes"]["stream"]
    for key in ("ms_per_window", "fps", "fps_steady", "frames_published", "stages_ms_per_window", "dit_step",
                "blocks_ms_per_window", "state_bytes", "cuda_peak_mb"):
        assert key in ex
    assert ex["frames_published"] == 29 and ex["state_bytes"] > 0
    for key in ("semantics", "dit_step_0", "dit_step_1", "alignment", "postprocess", "preprocess"):
        assert key in ex["stages_ms_per_window"]
    for key in ("latency_ms", "latency_ms_max", "refresh_frame_ms", "mean_ms_per_frame", "fps",
                "stages_ms_per_frame", "blocks_ms_per_frame", "state_bytes", "dit_step"):
        assert key in st
    assert st["refresh_frames"] == 1 and st["frames"] == 29
    for key in ("semantics", "dit_step_0", "dit_step_1", "postprocess"):
        assert key in st["stages_ms_per_frame"]
    assert set(st["blocks_ms_per_frame"]) == {"temporal_blocks", "rgtp_blocks"}


def test_video_bench_rejects_cudagraph() -> None:
    with pytest.raises(Exception, match="cudagraph"):
        load("bench_video").main(["--height", "32", "--width", "32", "--cudagraph"])


def test_metric_bench(capsys: pytest.CaptureFixture[str]) -> None:
    rec = load("bench_metric").main(["--height", "32", "--width", "48", "--steps", "2", "--repeat", "1",
                                     "--warmup", "0", "--threads", "1", "--refresh-every", "2",
                                     "--resolution-level", "0"])
    printed = last_json(capsys.readouterr().out)
    assert printed["bench"] == "metric"
    for key in ("encoder", "heads", "focal_shift_solve", "shift_solve_fov", "ransac_alignment", "apply_fit",
                "backproject_pack"):
        assert key in printed["components_ms"]
    assert set(printed["frame_ms"]) == {"ppd", "ppd+metric_unshared", "ppd+metric_shared",
                                        "ppd+metric_shared_every2"}
    for key in ("moge_encoder", "moge_heads", "ppd_dit_step"):
        assert printed["flops"][key] > 0
    for key in ("sharing_saves_ms", "encoder_rates", "peak_rss_mb", "cuda_peak_mb", "token_grid"):
        assert key in rec
    assert rec["encoder_runs_per_frame"] == {"unshared_ppd_semantics": 1.0, "shared": 1.0}  # one pass when shared
