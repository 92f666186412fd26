"""Image pipeline (PPDPipeline) per stage, plain reference path next to the optimised path.

Stages: preprocess (resize + to tensor), semantics (DA2 ViT), each DiT step, post-process (resize
back, to numpy). Both paths run the real ``PPDPipeline.__call__`` on the same random frame and
noise; the plain one is eager fp32 with explicit-softmax attention and per-block RoPE/adaLN (as the
official code), the optimised one adds ``runtime.apply_speedups`` (+ compile / CUDA graph);
``--official`` adds the official policy (the plain maths under bf16 autocast, fp32 weights).

Example (CPU): python bench/bench_pipeline.py --preset fixture_ppd_e2e_dit \
    --semantics-preset fixture_da2_vit_small --height 512 --width 512 --steps 4
"""
from __future__ import annotations

import copy
import os
import statistics
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (bench/ has no package; common puts the repo on sys.path)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppd_ros.config import InferenceConfig, preset  # noqa: E402
from ppd_ros.errors import ConfigError  # noqa: E402
from ppd_ros.flops import da2_semantics_flops, dit_step_flops  # noqa: E402
from ppd_ros.models import DA2SemanticEncoder, DiT  # noqa: E402
from ppd_ros.pipelines.image import PPDPipeline  # noqa: E402
from ppd_ros.runtime import PLAIN, Speedups, StepBuckets, apply_speedups, bucket_method  # noqa: E402

STAGES = ("preprocess", "semantics", "dit_total", "postprocess")


class TimedSampler:
    """Wraps the pipeline's sampler and records each denoiser step's synchronised wall time."""

    def __init__(self, inner: Callable, device: torch.device) -> None:
        self.inner, self.device, self.step_ms = inner, device, []
        self.timesteps = inner.timesteps

    def __call__(self, denoiser: Callable, init_latent: torch.Tensor, on_step: Callable | None = None) -> torch.Tensor:
        self.step_ms = []

        def timed_denoiser(latent: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            ms, v = common.timed(lambda: denoiser(latent, t), self.device)
            self.step_ms.append(ms)
            return v
        return self.inner(timed_denoiser, init_latent, on_step)


def build_pipeline(dit: DiT, enc: DA2SemanticEncoder, args, dtype_name: str, sp: Speedups,
                   step_mode: str) -> PPDPipeline:
    cfg = InferenceConfig(steps=args.steps, device=str(dit.x_embedder.proj.weight.device), dtype=dtype_name,
                          target_area=args.height * args.width, attention_backend=sp.attention)
    pipe = PPDPipeline(copy.deepcopy(dit), copy.deepcopy(enc), cfg)
    for m in (pipe.dit, pipe.encoder):
        apply_speedups(m, sp, pipe.dtype)
    if step_mode != "eager":  # the denoiser step and the once-per-frame ViT trunk, one per bucket
        pipe.step = StepBuckets(pipe.dit, step_mode, args.compile_mode)
        # Only the trunk: DA2's input normalisation builds its mean/std with a host->device copy,
        # which a CUDA graph cannot capture.
        trunk = getattr(pipe.encoder, "pretrained", None)
        if trunk is not None:
            bucket_method(trunk, "forward_features", step_mode, args.compile_mode)
    pipe.sampler = TimedSampler(pipe.sampler, pipe.device)
    return pipe


def run_frame(pipe: PPDPipeline, rgb: np.ndarray, noise: torch.Tensor) -> tuple[float, dict[str, float], np.ndarray]:
    """(total ms, per-stage ms, depth) of one real ``pipe(rgb)`` call."""
    ms, res = common.timed(lambda: pipe(rgb, noise=noise), pipe.device)
    stages = dict(res.timings_ms)
    for i, s in enumerate(pipe.sampler.step_ms):
        stages[f"dit_step_{i}"] = s
    return ms, stages, res.depth


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = common.base_parser(__doc__.splitlines()[0], preset="fixture_ppd_e2e_dit")
    ap.add_argument("--official", action="store_true",
                    help="also run the official policy: plain maths under --dtype autocast, fp32 weights")
    args = ap.parse_args(argv)
    env = common.setup(args)
    dev, h, w = env.device, args.height, args.width
    dcfg, vcfg = preset(args.preset), preset(args.semantics_preset)
    if dcfg.semantics_dim != vcfg.embed_dim:
        raise ConfigError(f"{args.preset} fuses {dcfg.semantics_dim}-wide semantics but "
                          f"{args.semantics_preset} produces {vcfg.embed_dim}")
    if h % 16 or w % 16:
        raise ConfigError(f"height and width must be multiples of 16, got {h}x{w}")
    dit = common.build_random(lambda: DiT(dcfg), dev, args.seed)
    enc = common.build_random(lambda: DA2SemanticEncoder(vcfg), dev, args.seed + 1)
    rng = np.random.default_rng(args.seed)
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)  # never time on zeros
    noise = torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(args.seed + 2))
    mode = "cudagraph" if args.cudagraph else "compile" if args.compile else "eager"
    specs = {} if args.no_plain else {"plain": ("float32", PLAIN, "eager")}
    if args.official:
        specs["official"] = (args.dtype, PLAIN, "eager")
    specs["optimised"] = (args.dtype, Speedups(), mode)
    paths, first, depth, mem, runs = {}, {}, {}, {}, {n: [] for n in specs}
    for name, (dtype_name, sp, step_mode) in specs.items():  # first call apart: allocation, compile, capture
        before = common.cuda_allocated_mb(dev)
        paths[name] = pipe = build_pipeline(dit, enc, args, dtype_name, sp, step_mode)
        common.reset_cuda_peak(dev)
        first[name], _, depth[name] = run_frame(pipe, rgb, noise)
        for _ in range(args.warmup):
            run_frame(pipe, rgb, noise)
        peak = common.cuda_peak_mb(dev)
        mem[name] = None if peak is None else round(peak - before, 1)  # this path's weights + activations
    del dit, enc
    for _ in range(args.repeat):  # interleaved so machine load hits both paths alike
        for name, pipe in paths.items():
            runs[name].append(run_frame(pipe, rgb, noise)[:2])
    step_flops = dit_step_flops(dcfg, h, w)
    sem_flops = da2_semantics_flops(vcfg, h, w)
    record = {"bench": "pipeline", "preset": args.preset, "semantics_preset": args.semantics_preset,
              "height": h, "width": w, "steps": args.steps, "dtype": str(paths["optimised"].dtype),
              "step_mode": mode, "flops_per_frame": sem_flops + args.steps * step_flops,
              "flops_per_dit_step": step_flops, "flops_semantics": sem_flops, "paths": {}, **env.info}
    for name, pipe in paths.items():
        record["paths"][name] = summarise(runs[name], first[name], mem[name], pipe, args, step_flops, sem_flops, dev)
    if "plain" in paths:
        p, o = record["paths"]["plain"], record["paths"]["optimised"]
        record["ratio_opt_vs_plain"] = round(p["ms_per_frame"] / o["ms_per_frame"], 3)
        record["ratio_dit_steps_opt_vs_plain"] = round(p["stages_ms"]["dit_total"] / o["stages_ms"]["dit_total"], 3)
        diff = depth["optimised"] - depth["plain"]
        record["max_abs_diff_vs_plain"] = float(np.abs(diff).max())
        record["rel_l2_vs_plain"] = float(np.linalg.norm(diff) / np.linalg.norm(depth["plain"]))
        # distribution-aware figures: a low-precision path is judged by these, not by its single worst pixel
        record["p99_abs_diff_vs_plain"] = float(np.percentile(np.abs(diff), 99))
        record["rms_depth_plain"] = float(np.sqrt(np.mean(np.square(depth["plain"], dtype=np.float64))))
    if "official" in paths:
        o = record["paths"]
        record["ratio_opt_vs_official"] = round(o["official"]["ms_per_frame"] / o["optimised"]["ms_per_frame"], 3)
    record["peak_rss_mb"] = round(common.peak_rss_mb(), 1)
    print_report(record, args)
    common.emit(record, args.json_out)
    return record


def summarise(runs: list, first_ms: float, cuda_mb: float | None, pipe: PPDPipeline, args, step_flops: int,
              sem_flops: int, dev: torch.device) -> dict[str, object]:
    totals = [r[0] for r in runs]
    stages = {k: round(statistics.median(r[1][k] for r in runs), 3) for k in runs[0][1]}
    ms = statistics.median(totals)
    step_ms = statistics.median(stages[f"dit_step_{i}"] for i in range(args.steps))
    peak = common.peak_tflops(dev, pipe.dtype, args.peak_tflops)
    return {"ms_per_frame": round(ms, 3), "min_ms_per_frame": round(min(totals), 3), "fps": round(1e3 / ms, 3),
            "first_frame_ms": round(first_ms, 1), "stages_ms": stages, "cuda_peak_mb": cuda_mb,
            "dtype": str(pipe.dtype), "step_errors": step_errors(pipe),
            "dit_step": common.rates(step_flops, step_ms, peak),
            "semantics": common.rates(sem_flops, stages["semantics"], peak),
            "frame": common.rates(sem_flops + args.steps * step_flops, ms, peak)}


def step_errors(pipe: PPDPipeline) -> list[str]:
    """Capture failures of the prepared step / trunk (they then ran uncaptured: say so)."""
    errs = list(getattr(pipe.step, "errors", []))
    trunk = getattr(pipe.encoder, "pretrained", None)
    return errs + list(getattr(getattr(trunk, "__dict__", {}).get("forward_features"), "errors", []))


def print_report(rec: dict[str, object], args) -> None:
    print(f"PPD image pipeline {rec['preset']} + {rec['semantics_preset']} {rec['height']}x{rec['width']}, "
          f"{rec['steps']} steps, on {rec['device_name']} ({rec['threads']} threads, load {rec['load_avg_1m']}); "
          f"{rec['flops_per_frame'] / 1e9:.2f} GFLOP per frame (counted); median of {args.repeat} interleaved frames")
    paths = rec["paths"]
    keys = list(next(iter(paths.values()))["stages_ms"])
    print(f"{'stage (ms)':<16}" + "".join(f"{n:>14}" for n in paths))
    for k in keys:
        print(f"{k:<16}" + "".join(f"{p['stages_ms'][k]:>14.2f}" for p in paths.values()))
    for label, key in (("ms/frame", "ms_per_frame"), ("FPS", "fps"), ("first frame ms", "first_frame_ms")):
        print(f"{label:<16}" + "".join(f"{p[key]:>14.2f}" for p in paths.values()))
    print(f"{'DiT TFLOP/s':<16}" + "".join(f"{p['dit_step']['tflops']:>14.3f}" for p in paths.values()))
    if rec["device"].startswith("cuda"):
        print(f"{'DiT MFU':<16}" + "".join(f"{p['dit_step']['mfu'] or 0:>14.1%}" for p in paths.values()))
        print(f"{'CUDA peak MiB':<16}" + "".join(f"{p['cuda_peak_mb'] or 0:>14.0f}" for p in paths.values()))
    print(f"peak RSS {rec['peak_rss_mb']:.0f} MiB")
    if "ratio_opt_vs_official" in rec:
        print(f"optimised/official (bf16 autocast, plain maths) speed ratio: {rec['ratio_opt_vs_official']:.2f}x")
    if "ratio_opt_vs_plain" in rec:
        print(f"optimised/plain speed ratio: frame {rec['ratio_opt_vs_plain']:.2f}x, DiT steps "
              f"{rec['ratio_dit_steps_opt_vs_plain']:.2f}x; max |depth diff| {rec['max_abs_diff_vs_plain']:.2e} "
              f"(p99 {rec['p99_abs_diff_vs_plain']:.2e}, rel L2 {rec['rel_l2_vs_plain']:.2e})")


if __name__ == "__main__":
    main()
