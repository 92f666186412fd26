"""CPU smoke test of the bench scripts: tiny sizes, one timed run, the JSON line's keys. No timings asserted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ppd_ros.config import preset

from .bench_loader import last_json, load
from .tolerances import dit_layers, dit_longest_reduction, rel_bound, vit_layers

pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)


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
    # same fp32 maths in another summation order: rel_bound(fp32, L, n) ~ 4 sqrt(L n) 2^-24 (about 5e-5 here);
    # bf16 operands with fp32 accumulation: rel_bound(bf16, L) = 4 sqrt(L) 2^-8 (about 0.09); see tests/tolerances.py
    cfg = preset("fixture_ppd_dit_small")
    n = dit_longest_reduction(cfg)
    assert rec["variants"]["sdpa+rope"]["rel_l2_vs_plain"] < rel_bound(torch.float32, dit_layers(cfg), n)
    assert rec["variants"]["opt+bf16"]["rel_l2_vs_plain"] < rel_bound(torch.bfloat16, dit_layers(cfg))


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
    # bf16 against fp32 on the same weights and noise. Not the max |diff| (one pixel's worst case, which
    # depends on the processor's bf16 kernels: 0.004 here, 0.14 on an AMX machine) but the L2 and 99th-percentile
    # errors, bounded from bf16's unit roundoff over the rounded layers on the path (tests/tolerances.py):
    # the semantic encoder once, then `steps` DiT steps. A broken path (wrong cast, weights, noise) is off by O(1).
    layers = vit_layers(preset("fixture_da2_vit_small")) + 2 * dit_layers(preset("fixture_ppd_e2e_dit"))
    bound = rel_bound(torch.bfloat16, layers)  # 51 layers: 4 sqrt(51) 2^-8 ~ 0.11
    assert rec["rel_l2_vs_plain"] < bound
    # |N(0, s)| has its 99th percentile at 2.58 s: the same bound, per pixel, relative to the depth's RMS
    assert rec["p99_abs_diff_vs_plain"] < 2.58 * bound * rec["rms_depth_plain"]
