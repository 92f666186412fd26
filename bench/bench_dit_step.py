"""One denoiser step of the PPD DiT: the plain reference path next to each speed-up and all of them.

Variants are '+'-joined speed-up tokens on top of the plain path (eager fp32, explicit-softmax
attention as the official code runs, RoPE tables and adaLN modulation recomputed in every block):

  sdpa     fused scaled_dot_product_attention kernels      rope   RoPE cos/sin once per grid
  fmod     one adaLN product per step for all blocks        cast   weights stored in the low dtype
  ln       LayerNorm+modulate in one kernel, addcmul residual
  bf16 / fp16   autocast compute dtype                      compile / graph   torch.compile / CUDA graph
  (with compile, rope, fmod and ln are dropped: inductor fuses those ops itself; compile+graph captures
   the compiled step in a CUDA graph)
  opt      = sdpa+rope+fmod+ln (+cast+<--dtype> when --dtype is not float32)

Example (CPU): python bench/bench_dit_step.py --preset fixture_ppd_dit_small --height 512 --width 512
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from dataclasses import dataclass
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (bench/ has no package; common puts the repo on sys.path)

import torch  # noqa: E402

from ppd_ros.config import preset  # noqa: E402
from ppd_ros.flops import dit_step_flops  # noqa: E402
from ppd_ros.models import DiT  # noqa: E402
from ppd_ros.runtime import Speedups, StepBuckets, apply_speedups, autocast  # noqa: E402

TOKENS = {"sdpa", "rope", "fmod", "ln", "cast", "bf16", "fp16", "compile", "graph"}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Variant:
    """A parsed variant name: which speed-ups, which compute dtype, which step mode."""

    name: str
    speedups: Speedups
    dtype: torch.dtype
    mode: str  # runtime.StepMode: "eager" | "compile" | "cudagraph" | "compile+cudagraph"


def parse_variant(name: str, opt_dtype: torch.dtype) -> Variant:
    toks = set() if name == "plain" else set(name.split("+"))
    if "opt" in toks:
        toks = (toks - {"opt"}) | {"sdpa", "rope", "fmod", "ln"}
        if opt_dtype != torch.float32:
            toks |= {"cast", {torch.bfloat16: "bf16", torch.float16: "fp16"}[opt_dtype]}
    unknown = toks - TOKENS
    if unknown:
        raise ValueError(f"unknown variant token(s) {sorted(unknown)} in {name!r}; known: {sorted(TOKENS)}, opt, plain")
    dtype = next((DTYPES[t] for t in ("bf16", "fp16") if t in toks), torch.float32)
    sp = Speedups(attention="sdpa" if "sdpa" in toks else "math", rope_cache="rope" in toks,
                  fused_modulation="fmod" in toks, cast_weights="cast" in toks, fused_norm="ln" in toks)
    if "compile" in toks:  # Python-side caches would only add graph breaks; inductor fuses those ops itself
        sp = Speedups(attention=sp.attention, rope_cache=False, fused_modulation=False, cast_weights=sp.cast_weights,
                      fused_norm=False)
    mode = {(True, True): "compile+cudagraph", (True, False): "compile", (False, True): "cudagraph"}.get(
        ("compile" in toks, "graph" in toks), "eager")
    return Variant(name, sp, dtype, mode)


def default_variants(device: torch.device, args: argparse.Namespace) -> list[str]:
    names = ["plain", "sdpa", "rope", "fmod", "ln", "bf16", "opt"]
    if device.type == "cpu":
        names += ["opt+cast+bf16"]
    else:
        names.insert(1, "bf16")  # "official": plain maths under bf16 autocast, fp32 weights
        names = list(dict.fromkeys(names)) + ["opt+graph"]
    if args.compile:
        names.append("opt+compile")
    if args.cudagraph and "opt+graph" not in names:
        names.append("opt+graph")
    return list(dict.fromkeys(names))


def make_call(base: DiT, v: Variant, inputs: tuple[torch.Tensor, ...], device: torch.device,
              compile_mode: str) -> Callable[[], torch.Tensor]:
    """A zero-argument callable running one step of a freshly configured copy of ``base``."""
    model = copy.deepcopy(base)
    apply_speedups(model, v.speedups, v.dtype)
    step = StepBuckets(lambda x, s, t: model(x, s, t), v.mode, compile_mode)

    def call() -> torch.Tensor:
        with torch.inference_mode(), autocast(device, v.dtype):
            return step(*inputs)
    call.errors = step.errors  # type: ignore[attr-defined]  # capture failures, reported per variant
    return call


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = common.base_parser(__doc__.splitlines()[0])
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: a standard set)")
    ap.add_argument("--optimised", default="opt", help="variant whose ratio to plain is the headline")
    ap.add_argument("--profile", default="", help="folder/prefix for torch.profiler tables (PREFIX_<variant>.txt)")
    ap.add_argument("--profile-variants", default="", help="variants to profile (default: the optimised one)")
    args = ap.parse_args(argv)
    env = common.setup(args)
    dev = env.device
    cfg = preset(args.preset)
    h, w, b = args.height, args.width, args.batch
    base = common.build_random(lambda: DiT(cfg), dev, args.seed)
    g = torch.Generator(device=dev).manual_seed(args.seed + 1)
    inputs = (torch.randn(b, cfg.in_channels, h, w, device=dev, generator=g),
              torch.randn(b, (h // 16) * (w // 16), cfg.semantics_dim, device=dev, generator=g),
              torch.tensor(750, dtype=torch.int32, device=dev))
    names = list(dict.fromkeys(n for n in args.variants.split(",") if n)) or default_variants(dev, args)
    if args.no_plain:
        names = [n for n in names if n != "plain"]
    if args.optimised not in names:
        names.append(args.optimised)
    variants = [parse_variant(n, env.dtype) for n in names]
    calls, outs, mem, first = {}, {}, {}, {}
    for v in variants:  # build and run once (compile / capture happen here: timed apart)
        before = common.cuda_allocated_mb(dev)
        calls[v.name] = make_call(base, v, inputs, dev, args.compile_mode)
        common.reset_cuda_peak(dev)
        first[v.name], out = common.timed(calls[v.name], dev)
        outs[v.name] = out.float().clone()
        peak = common.cuda_peak_mb(dev)
        mem[v.name] = None if peak is None else round(peak - before, 1)  # this variant's copy + activations
    timings = common.measure_interleaved(calls, dev, args.warmup, args.repeat)
    flops = dit_step_flops(cfg, h, w, b)
    ref = outs.get("plain")
    rows = {}
    for v in variants:
        t = timings[v.name]
        peak = common.peak_tflops(dev, v.dtype, args.peak_tflops)
        row = {**t.summary(), **common.rates(flops, t.median, peak), "cuda_peak_mb": mem[v.name],
               "first_call_ms": round(first[v.name], 1)}
        if calls[v.name].errors:  # the variant ran uncaptured: its numbers are not what its name says
            row["errors"] = list(calls[v.name].errors)
        if ref is not None:
            row["speedup_vs_plain"] = round(timings["plain"].median / t.median, 3)
            row["max_abs_diff_vs_plain"] = common.max_abs_diff(outs[v.name], ref)
            row["rel_l2_vs_plain"] = ((outs[v.name] - ref).norm() / ref.norm()).item()
        rows[v.name] = row
    print_table(rows, args, env, flops)
    record = {"bench": "dit_step", "preset": args.preset, "height": h, "width": w, "batch": b,
              "dtype": str(env.dtype), "flops_per_step": flops, "variants": rows, "optimised": args.optimised,
              "ratio_opt_vs_plain": rows[args.optimised].get("speedup_vs_plain"),
              "peak_rss_mb": round(common.peak_rss_mb(), 1), **env.info}
    if args.profile:
        record["profile"] = {}
        for name in [n for n in args.profile_variants.split(",") if n] or [args.optimised]:
            path = f"{args.profile}_{name.replace('+', '_')}.txt"  # '+' is not file-name safe everywhere
            try:  # a profiler problem must not cost the measurements above
                record["profile"][name] = common.profile_to_file(calls[name], dev, path)
            except Exception as exc:  # noqa: BLE001
                record["profile"][name] = {"error": repr(exc)}
    common.emit(record, args.json_out)
    return record


def print_table(rows: dict[str, dict], args: argparse.Namespace, env: common.Env, flops: int) -> None:
    print(f"DiT step {args.preset} {args.height}x{args.width} batch {args.batch} on {env.info['device_name']} "
          f"({env.info['threads']} threads, load {env.info['load_avg_1m']}); {flops / 1e9:.2f} GFLOP per step "
          f"(counted); median of {args.repeat} interleaved runs after {args.warmup} warm-up")
    print(f"{'variant':<28}{'median ms':>11}{'min ms':>9}{'1st call':>10}{'TFLOP/s':>9}{'MFU':>7}"
          f"{'x plain':>9}{'max|diff|':>11}")
    for name, r in rows.items():
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        diff = f"{r['max_abs_diff_vs_plain']:.2e}" if "max_abs_diff_vs_plain" in r else "-"
        ratio = f"{r['speedup_vs_plain']:.2f}" if "speedup_vs_plain" in r else "-"
        print(f"{name:<28}{r['median_ms']:>11.2f}{r['min_ms']:>9.2f}{r['first_call_ms'] or 0:>10.1f}"
              f"{r['tflops']:>9.3f}{mfu:>7}{ratio:>9}{diff:>11}")


if __name__ == "__main__":
    main()
