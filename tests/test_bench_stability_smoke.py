"""CPU smoke test of bench/bench_stability.py: tiny clips, two methods, the JSON line's keys. No timings asserted."""
from __future__ import annotations

import pytest

from .bench_loader import last_json, load


def test_stability_bench(capsys: pytest.CaptureFixture[str]) -> None:
    load("bench_stability").main(["--seeds", "1", "--length", "6", "--moving", "1", "--no-real",
                                  "--full-size-frames", "0", "--speed-frames", "1", "--methods", "ppd_fresh_s4,ppd_fixed_s1"])
    rec = last_json(capsys.readouterr().out)
    assert rec["bench"] == "stability" and set(rec["methods"]) == {"ppd_fresh_s4", "ppd_fixed_s1"}
    assert set(rec["interleaved_speed"]["ms_per_frame"]) >= {"ppd_fresh_s4", "ppd_fixed_s1"}
    for row in rec["methods"].values():
        for key in ("absrel", "gt_flicker", "static_flicker", "dit_evals", "ms_per_frame", "latency_ms",
                    "cut_recovery", "scale_jitter[default]", "metric_static_flicker[per_frame]"):
            assert key in row, key
    assert rec["methods"]["ppd_fixed_s1"]["dit_evals"] == 1 and rec["methods"]["ppd_fresh_s4"]["dit_evals"] == 4
    # one noise per stream: a still camera gives a (nearly) still depth, a fresh draw per frame does not
    assert rec["methods"]["ppd_fixed_s1"]["static_flicker"] < rec["methods"]["ppd_fresh_s4"]["static_flicker"]
