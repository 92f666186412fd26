"""CPU smoke test of the bench scripts: tiny sizes, one timed run, the JSON line's keys. No timings asserted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .bench_loader import last_json, load


def test_dit_step_bench(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rec = load("bench_dit_step").main(["--height", "32", "--width", "32", "--repeat", "1", "--warmup", "0",
                                       "--variants", "plain,sdpa+rope,opt+bf16", "--json-out",
                                       str(tmp_path / "r.jsonl"), "--profile", str(tmp_path / "prof")])
    printed = last_json(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "r.jsonl").read_text())
    for key in ("flops_per_step", "variants", "ratio_opt_vs_plain", "peak_rss_mb", "device", "torch", "profile"):
        assert key in printed
    assert printed["flops_per_step"] > 0 and (tmp_path / "prof_opt.txt").is_file()
    row = rec["variants"]["opt+bf16"]
    for key in ("median_ms", "tflops", "mfu", "speedup_vs_plain", "max_abs_diff_vs_plain", "first_call_ms"):
        assert key in row
    assert rec["variants"]["sdpa+rope"]["max_abs_diff_vs_plain"] < 1e-4


def test_dit_step_bench_rejects_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        load("bench_dit_step").main(["--height", "32", "--width", "32", "--variants", "plain,warp9"])


def test_pipeline_bench(capsys: pytest.CaptureFixture[str]) -> None:
    rec = load("bench_pipeline").main(["--height", "32", "--width", "48", "--steps", "2", "--repeat", "1",
                                       "--warmup", "0", "--official", "--dtype", "bfloat16"])
    printed = last_json(capsys.readouterr().out)
    assert printed["bench"] == "pipeline" and set(printed["paths"]) == {"plain", "official", "optimised"}
    stages = printed["paths"]["optimised"]["stages_ms"]
    for key in ("preprocess", "semantics", "dit_step_0", "dit_step_1", "postprocess"):
        assert key in stages
    for key in ("ratio_opt_vs_plain", "ratio_opt_vs_official", "max_abs_diff_vs_plain", "flops_per_frame",
                "peak_rss_mb"):
        assert key in rec
    assert rec["max_abs_diff_vs_plain"] < 0.1  # bf16 against fp32: loose, only catches broken paths
