"""CPU smoke test of the bench scripts: tiny sizes, one timed run, the JSON line's keys. No timings asserted."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ppd_ros.config import preset

from .bench_loader import last_json, load
from .tolerances import dit_layers, rel_bound, vit_layers

pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)


def test_dit_step_bench(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rec = load("bench_dit_step").main(["--height", "32", "--width", "32", "--repeat", "1", "--warmup", "0",
                                       "--variants", "math,rope,default+bf16", "--optimised", "default+bf16",
                                       "--json-out", str(tmp_path / "r.jsonl"), "--profile", str(tmp_path / "prof")])
    printed = last_json(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "r.jsonl").read_text())
    for key in ("flops_per_step", "variants", "ratio_opt_vs_ref", "peak_rss_mb", "device", "torch", "profile"):
        assert key in printed
    assert printed["flops_per_step"] > 0 and (tmp_path / "prof_default_bf16.txt").is_file()
    assert list(rec["variants"])[0] == "ref"  # the reference (official procedure) always runs, first
    row = rec["variants"]["default+bf16"]
    for key in ("median_ms", "tflops", "mfu", "speedup_vs_ref", "max_abs_diff_vs_ref", "first_call_ms"):
        assert key in row
    assert rec["variants"]["rope"]["max_abs_diff_vs_ref"] == 0.0  # bit-identical
    assert rec["variants"]["math"]["max_abs_diff_vs_ref"] < 1e-4 and "note" in rec["variants"]["math"]


def test_dit_step_bench_rejects_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        load("bench_dit_step").main(["--height", "32", "--width", "32", "--variants", "ref,warp9"])


def test_pipeline_bench(capsys: pytest.CaptureFixture[str]) -> None:
    rec = load("bench_pipeline").main(["--height", "32", "--width", "48", "--steps", "2", "--repeat", "1",
                                       "--warmup", "0", "--math", "--dtype", "bfloat16"])
    printed = last_json(capsys.readouterr().out)
    assert printed["bench"] == "pipeline" and set(printed["paths"]) == {"reference", "default", "math"}
    stages = printed["paths"]["default"]["stages_ms"]
    for key in ("preprocess", "semantics", "dit_step_0", "dit_step_1", "postprocess"):
        assert key in stages
    for key in ("ratio_default_vs_reference", "flops_per_frame", "peak_rss_mb"):
        assert key in rec
    # default vs reference, both bf16 autocast: judged by the relative L2 error bounded from bf16's unit
    # roundoff over the rounded layers (tests/tolerances.py), not by one pixel's kernel-dependent worst case
    layers = vit_layers(preset("fixture_da2_vit_small")) + 2 * dit_layers(preset("fixture_ppd_e2e_dit"))
    assert rec["paths"]["default"]["rel_l2_vs_reference"] < rel_bound(torch.bfloat16, layers)
