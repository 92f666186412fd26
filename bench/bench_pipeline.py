"""Image pipeline (PPDPipeline) per stage: the reference (official) path next to the node's default path.

Stages: preprocess (resize + to tensor), semantics, each DiT step, post-process (resize back, to
numpy). Every path runs the real ``PPDPipeline.__call__`` on the same frame and noise, in one process,
interleaved, warm-up excluded, median of ``--repeat`` frames:

* ``reference``: ``runtime.REFERENCE``, the official procedure (SDPA attention, per-block RoPE tables and
  adaLN products, fp32 weights under the ``--dtype`` autocast; float32 = no autocast, the CPU policy);
* ``default``: ``runtime.apply_pipeline_speedups(pipe, speedups_for(cfg))``, the call the node's factory
  makes, i.e. what the node runs;
* ``math`` (``--math``, a labelled extra row): the reference with explicit-softmax attention, a path
  the official code never takes;
* ``optimised`` (only with ``--compile`` / ``--cudagraph``): default + the compiled / captured step.

``--node`` builds the reference and default paths through ``ppd_ros.ros.factory.build_models`` itself
(``NodeSettings()`` defaults: the shipped embedded model at its working area; ``speedups=False`` for
the reference), so the default row is exactly the node's default pipeline; model flags are then ignored.

Example (CPU): python bench/bench_pipeline.py --preset fixture_ppd_e2e_dit \
    --semantics-preset fixture_da2_vit_small --height 512 --width 512 --steps 4
"""
from __future__ import annotations

import argparse
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
from ppd_ros.runtime import (MATH, REFERENCE, StepBuckets, apply_pipeline_speedups, bucket_method,  # noqa: E402
                             speedups_for)

STAGES = ("preprocess", "semantics", "dit_total", "postprocess")


class TimedSampler:
    """Wraps the pipeline's sampler and records each denoiser step's synchronised wall time."""

    def __init__(self, inner: Callable, device: torch.device) -> None:
        self.inner, self.device, self.step_ms = inner, device, []
        self.timesteps = inner.timesteps

    def __call__(self, denoiser: Callable, init_latent: torch.Tensor, on_step: Callable | None = None,
                 start: int = 0) -> torch.Tensor:
        self.step_ms = []

        def timed_denoiser(latent: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            ms, v = common.timed(lambda: denoiser(latent, t), self.device)
            self.step_ms.append(ms)
            return v
        return self.inner(timed_denoiser, init_latent, on_step, start=start)


def build_pipeline(dit: DiT, enc: DA2SemanticEncoder, args, dtype_name: str, path: str) -> PPDPipeline:
    """One path on deep copies of the same weights: 'reference', 'math', 'default' or 'optimised'."""
    cfg = InferenceConfig(steps=args.steps, device=str(dit.x_embedder.proj.weight.device), dtype=dtype_name,
                          target_area=args.height * args.width, speedups=path in ("default", "optimised"),
                          attention_backend="math" if path == "math" else "sdpa")
    pipe = PPDPipeline(copy.deepcopy(dit), copy.deepcopy(enc), cfg)
    sp = speedups_for(cfg)
    if path in ("reference", "math"):  # the config alone must give the intended path
        assert sp == {"reference": REFERENCE, "math": MATH}[path], sp
    apply_pipeline_speedups(pipe, sp, pipe.dtype)  # the factory's call; REFERENCE/MATH switch everything off
    if path == "optimised":  # the denoiser step and the once-per-frame ViT trunk, one per bucket
        step_mode = "cudagraph" if args.cudagraph else "compile"
        pipe.step = StepBuckets(pipe.dit, step_mode, args.compile_mode)
        # Only the trunk: DA2's input normalisation builds its mean/std with a host->device copy,
        # which a CUDA graph cannot capture.
        trunk = getattr(pipe.encoder, "pretrained", None)
        if trunk is not None:
            bucket_method(trunk, "forward_features", step_mode, args.compile_mode)
    pipe.sampler = TimedSampler(pipe.sampler, pipe.device)
    return pipe


def build_node_paths(args) -> dict[str, PPDPipeline]:
    """The node's own pipelines (ros.factory.build_models): default settings, and speedups=False."""
    from ppd_ros.ros.factory import build_models
    from ppd_ros.ros.params import NodeSettings
    out = {}
    for name, sp in (("reference", False), ("default", True)):
        models = build_models(NodeSettings(metric=False, speedups=sp, cpu_threads=args.threads, device=args.device))
        out[name] = models.pipeline
    if args.math:
        models = build_models(NodeSettings(metric=False, speedups=False, cpu_threads=args.threads, device=args.device))
        from ppd_ros.runtime import set_attention_backend
        set_attention_backend(models.pipeline.dit, "math")
        out["math"] = models.pipeline
    for pipe in out.values():
        pipe.sampler = TimedSampler(pipe.sampler, pipe.device)
    return out


def run_frame(pipe: PPDPipeline, rgb: np.ndarray, noise: torch.Tensor) -> tuple[float, dict[str, float], np.ndarray]:
    """(total ms, per-stage ms, depth) of one real ``pipe(rgb)`` call."""
    ms, res = common.timed(lambda: pipe(rgb, noise=noise), pipe.device)
    stages = dict(res.timings_ms)
    for i, s in enumerate(pipe.sampler.step_ms):
        stages[f"dit_step_{i}"] = s
    return ms, stages, res.depth


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = common.base_parser(__doc__.splitlines()[0], preset="fixture_ppd_e2e_dit")
    ap.add_argument("--math", action="store_true",
                    help="also run the explicit-softmax path (labelled extra row; not the official path)")
    ap.add_argument("--node", action="store_true",
                    help="build the paths through ros.factory.build_models (the node's default pipeline vs "
                         "speedups=False); preset/size/dtype flags are then the node's defaults")
    # --official: the reference path IS the official procedure now; accepted (ignored) for old command lines
    ap.add_argument("--official", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    env = common.setup(args)
    dev = env.device
    step_mode = "cudagraph" if args.cudagraph else "compile" if args.compile else "eager"
    if args.node:
        paths = build_node_paths(args)
        node_pipe = paths["default"]
        dcfg, enc_cfg = node_pipe.dit.cfg, None
        rgb = load_node_frame()
        h, w = node_pipe.prepare(rgb).shape[-2:]
        args.steps = node_pipe.cfg.steps
        label = ("node default (ros.factory.build_models(NodeSettings())): " + type(node_pipe.dit).__name__ +
                 f" D{dcfg.hidden_size}x{dcfg.depth} + {type(node_pipe.encoder).__name__}")
    else:
        h, w = args.height, args.width
        dcfg, enc_cfg = preset(args.preset), preset(args.semantics_preset)
        if dcfg.semantics_dim != enc_cfg.embed_dim:
            raise ConfigError(f"{args.preset} fuses {dcfg.semantics_dim}-wide semantics but "
                              f"{args.semantics_preset} produces {enc_cfg.embed_dim}")
        if h % 16 or w % 16:
            raise ConfigError(f"height and width must be multiples of 16, got {h}x{w}")
        dit = common.build_random(lambda: DiT(dcfg), dev, args.seed)
        enc = common.build_random(lambda: DA2SemanticEncoder(enc_cfg), dev, args.seed + 1)
        rgb = np.random.default_rng(args.seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)  # never zeros
        names = [] if args.no_plain else ["reference"]
        names += ["default"] + (["math"] if args.math else []) + (["optimised"] if step_mode != "eager" else [])
        paths = {n: build_pipeline(dit, enc, args, args.dtype, n) for n in names}
        del dit, enc
        label = f"{args.preset} + {args.semantics_preset}"
    noise = torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(args.seed + 2))
    first, depth, mem, runs = {}, {}, {}, {n: [] for n in paths}
    for name, pipe in paths.items():  # first call apart: allocation, compile, capture
        before = common.cuda_allocated_mb(dev)
        common.reset_cuda_peak(dev)
        first[name], _, depth[name] = run_frame(pipe, rgb, noise)
        for _ in range(args.warmup):
            run_frame(pipe, rgb, noise)
        peak = common.cuda_peak_mb(dev)
        mem[name] = None if peak is None else round(peak - before, 1)  # this path's weights + activations
    for _ in range(args.repeat):  # interleaved so machine load hits every path alike
        for name, pipe in paths.items():
            runs[name].append(run_frame(pipe, rgb, noise)[:2])
    if args.node:  # counted on the node's own models at the working size
        step_flops, sem_flops = node_flops(paths["reference"], rgb)
    else:
        step_flops, sem_flops = dit_step_flops(dcfg, h, w), da2_semantics_flops(enc_cfg, h, w)
    head = paths.get("optimised", paths["default"])
    record = {"bench": "pipeline", "preset": "node-default" if args.node else args.preset,
              "semantics_preset": None if args.node else args.semantics_preset, "label": label,
              "height": h, "width": w, "steps": args.steps, "dtype": str(head.dtype),
              "step_mode": step_mode, "flops_per_frame": sem_flops + args.steps * step_flops,
              "flops_per_dit_step": step_flops, "flops_semantics": sem_flops, "paths": {}, **env.info}
    for name, pipe in paths.items():
        record["paths"][name] = summarise(runs[name], first[name], mem[name], pipe, args, step_flops, sem_flops, dev)
    if "reference" in paths:
        ref = record["paths"]["reference"]
        for name in paths:
            p = record["paths"][name]
            p["ratio_vs_reference"] = round(ref["ms_per_frame"] / p["ms_per_frame"], 3)
            p["ratio_dit_steps_vs_reference"] = round(ref["stages_ms"]["dit_total"] / p["stages_ms"]["dit_total"], 3)
            diff = depth[name] - depth["reference"]
            p["max_abs_diff_vs_reference"] = float(np.abs(diff).max())
            p["rel_l2_vs_reference"] = float(np.linalg.norm(diff) / np.linalg.norm(depth["reference"]))
        record["ratio_default_vs_reference"] = record["paths"]["default"]["ratio_vs_reference"]
    record["peak_rss_mb"] = round(common.peak_rss_mb(), 1)
    print_report(record, args)
    common.emit(record, args.json_out)
    return record


def node_flops(pipe: PPDPipeline, rgb: np.ndarray) -> tuple[int, int]:
    """(one DiT step, semantics) FLOPs of a built pipeline, counted on one real call each."""
    from ppd_ros.flops import count_flops
    with torch.inference_mode():
        img = pipe.prepare(rgb).to(pipe.device)
        sem_flops = count_flops(lambda: pipe.encoder.forward_semantics(img))
        sem = pipe.encoder.forward_semantics(img)
        x = torch.zeros(1, pipe.dit.cfg.in_channels, *img.shape[-2:], device=pipe.device)
        step_flops = count_flops(lambda: pipe.dit(x, sem, torch.tensor(500, dtype=torch.int32)))
    return step_flops, sem_flops


def load_node_frame() -> np.ndarray:
    """A bundled real frame (Kinect, 640x480 class): what a camera would send the node."""
    from ppd_ros.data.real import load_real_frame
    return load_real_frame("kinect").rgb


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
    print(f"PPD image pipeline {rec['label']} {rec['height']}x{rec['width']}, "
          f"{rec['steps']} steps, {rec['dtype']}, on {rec['device_name']} ({rec['threads']} threads, load "
          f"{rec['load_avg_1m']}); {rec['flops_per_frame'] / 1e9:.2f} GFLOP per frame (counted); median of "
          f"{args.repeat} interleaved frames after {args.warmup} warm-up")
    paths = rec["paths"]
    names = [n + (" (extra)" if n == "math" else "") for n in paths]
    keys = list(next(iter(paths.values()))["stages_ms"])
    print(f"{'stage (ms)':<16}" + "".join(f"{n:>16}" for n in names))
    for k in keys:
        print(f"{k:<16}" + "".join(f"{p['stages_ms'][k]:>16.2f}" for p in paths.values()))
    for label, key in (("ms/frame", "ms_per_frame"), ("FPS", "fps"), ("first frame ms", "first_frame_ms")):
        print(f"{label:<16}" + "".join(f"{p[key]:>16.2f}" for p in paths.values()))
    print(f"{'DiT TFLOP/s':<16}" + "".join(f"{p['dit_step']['tflops']:>16.3f}" for p in paths.values()))
    if rec["device"].startswith("cuda"):
        print(f"{'DiT MFU':<16}" + "".join(f"{p['dit_step']['mfu'] or 0:>16.1%}" for p in paths.values()))
        print(f"{'CUDA peak MiB':<16}" + "".join(f"{p['cuda_peak_mb'] or 0:>16.0f}" for p in paths.values()))
    if "ratio_default_vs_reference" in rec:
        print(f"{'x reference':<16}" + "".join(f"{p['ratio_vs_reference']:>16.3f}" for p in paths.values()))
        print(f"{'x ref (steps)':<16}" + "".join(f"{p['ratio_dit_steps_vs_reference']:>16.3f}" for p in paths.values()))
        print(f"{'max|depth diff|':<16}" + "".join(f"{p['max_abs_diff_vs_reference']:>16.2e}" for p in paths.values()))
    print(f"peak RSS {rec['peak_rss_mb']:.0f} MiB")
    if "math" in paths:
        print("(extra) = explicit-softmax attention: not how the official code runs; shown for reference only")


if __name__ == "__main__":
    main()
