"""One denoiser step of the PPD DiT: the reference (official) path next to each speed-up and the default.

Variants are '+'-joined tokens on top of the **reference path** ``ref`` = ``runtime.REFERENCE``, the
official procedure (ppd_image_spec.md §5.3, §7): ``F.scaled_dot_product_attention`` (the official
Attention's fused_attn=True), RoPE tables and the adaLN modulation recomputed in every block, fp32
weights under the run's autocast dtype (``--dtype``; float32 = no autocast, the CPU policy):

  rope     RoPE cos/sin once per grid                       fmod   one adaLN product per step for all blocks
  ln       LayerNorm+modulate in one kernel, addcmul residual  cast   weights stored in the low dtype
  math     explicit-softmax attention: NOT the official path, a labelled extra row only
  fp32 / bf16 / fp16   compute dtype of this variant (default: the run's --dtype)
  compile / graph   torch.compile / CUDA graph of the step (opt-in, off in the node)
  (with compile, rope, fmod and ln are dropped: inductor fuses those ops itself)
  default  = runtime.DEFAULT, what the node's pipelines run: rope+fmod+ln (+cast when the dtype is not float32)

Aliases kept for old command lines: ``opt`` = ``default``, ``plain`` = ``math+fp32``, ``sdpa`` = nothing.
Every ratio (``x ref``) and difference is against ``ref`` at the run's dtype (``--reference``).

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
from ppd_ros.runtime import DEFAULT, REFERENCE, Speedups, StepBuckets, apply_speedups, autocast  # noqa: E402

TOKENS = {"ref", "math", "rope", "fmod", "ln", "cast", "fp32", "bf16", "fp16", "compile", "graph"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_TOKEN = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class Variant:
    """A parsed variant name: which speed-ups, which compute dtype, which step mode."""

    name: str
    speedups: Speedups
    dtype: torch.dtype
    mode: str  # runtime.StepMode: "eager" | "compile" | "cudagraph" | "compile+cudagraph"


def parse_variant(name: str, run_dtype: torch.dtype) -> Variant:
    toks = set(name.split("+"))
    if "plain" in toks:  # the former baseline: explicit softmax in fp32
        toks = (toks - {"plain"}) | {"math", "fp32"}
    toks -= {"sdpa"}  # SDPA is the reference attention already
    if toks & {"opt", "default"}:
        toks = (toks - {"opt", "default"}) | {"rope", "fmod", "ln"}
        if DEFAULT.cast_weights:
            toks |= {"cast"}  # acts only when the dtype is not float32 (as in apply_speedups)
    unknown = toks - TOKENS
    if unknown:
        raise ValueError(f"unknown variant token(s) {sorted(unknown)} in {name!r}; known: {sorted(TOKENS)}, "
                         "default (opt), plain")
    dtype = next((DTYPES[t] for t in ("fp32", "bf16", "fp16") if t in toks), run_dtype)
    sp = Speedups(attention="math" if "math" in toks else REFERENCE.attention, rope_cache="rope" in toks,
                  fused_modulation="fmod" in toks, cast_weights="cast" in toks, fused_norm="ln" in toks)
    if "compile" in toks:  # Python-side caches would only add graph breaks; inductor fuses those ops itself
        sp = Speedups(attention=sp.attention, rope_cache=False, fused_modulation=False, cast_weights=sp.cast_weights,
                      fused_norm=False)
    mode = {(True, True): "compile+cudagraph", (True, False): "compile", (False, True): "cudagraph"}.get(
        ("compile" in toks, "graph" in toks), "eager")
    return Variant(name, sp, dtype, mode)


def override(cfg, spec: str):
    """``cfg`` with ``name=value`` fields replaced (ints/floats parsed), e.g. a reduced official DiT."""
    if not spec:
        return cfg
    from dataclasses import replace
    kv = dict(item.split("=", 1) for item in spec.split(","))
    return replace(cfg, **{k: type(getattr(cfg, k))(v) for k, v in kv.items()})


def default_variants(device: torch.device, args: argparse.Namespace) -> list[str]:
    names = ["ref", "default", "rope", "fmod", "ln", "math"]
    if device.type == "cuda":
        names += ["cast", "default+graph"]
    if args.compile:
        names.append("default+compile")
    if args.cudagraph and "default+graph" not in names:
        names.append("default+graph")
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
    ap.add_argument("--reference", default="ref", help="variant every ratio and difference is taken against")
    ap.add_argument("--optimised", default="default", help="variant whose ratio to the reference is the headline")
    ap.add_argument("--dit", default="", help="override preset fields, e.g. hidden_size=384,depth=24,num_heads=6")
    ap.add_argument("--profile", default="", help="folder/prefix for torch.profiler tables (PREFIX_<variant>.txt)")
    ap.add_argument("--profile-variants", default="", help="variants to profile (default: the optimised one)")
    args = ap.parse_args(argv)
    env = common.setup(args)
    dev = env.device
    cfg = override(preset(args.preset), args.dit)
    h, w, b = args.height, args.width, args.batch
    base = common.build_random(lambda: DiT(cfg), dev, args.seed)
    g = torch.Generator(device=dev).manual_seed(args.seed + 1)
    inputs = (torch.randn(b, cfg.in_channels, h, w, device=dev, generator=g),
              torch.randn(b, (h // 16) * (w // 16), cfg.semantics_dim, device=dev, generator=g),
              torch.tensor(750, dtype=torch.int32, device=dev))
    names = list(dict.fromkeys(n for n in args.variants.split(",") if n)) or default_variants(dev, args)
    if args.no_plain:  # --no-plain: skip the reference row (its ratios are then absent)
        names = [n for n in names if n != args.reference]
    else:
        names = [args.reference] + [n for n in names if n != args.reference]
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
    ref = outs.get(args.reference)
    rows = {}
    for v in variants:
        t = timings[v.name]
        peak = common.peak_tflops(dev, v.dtype, args.peak_tflops)
        row = {**t.summary(), **common.rates(flops, t.median, peak), "cuda_peak_mb": mem[v.name],
               "first_call_ms": round(first[v.name], 1), "dtype": str(v.dtype), "speedups": v.speedups.__dict__,
               "mode": v.mode}
        if v.speedups.attention == "math":
            row["note"] = "extra row: explicit-softmax attention, not the official path"
        if calls[v.name].errors:  # the variant ran uncaptured: its numbers are not what its name says
            row["errors"] = list(calls[v.name].errors)
        if ref is not None:
            row["speedup_vs_ref"] = round(timings[args.reference].median / t.median, 3)
            row["max_abs_diff_vs_ref"] = common.max_abs_diff(outs[v.name], ref)
            row["rel_l2_vs_ref"] = ((outs[v.name] - ref).norm() / ref.norm()).item()
        rows[v.name] = row
    print_table(rows, args, env, flops)
    record = {"bench": "dit_step", "preset": args.preset, "dit_override": args.dit, "height": h, "width": w, "batch": b,
              "dtype": str(env.dtype), "flops_per_step": flops, "variants": rows, "reference": args.reference,
              "optimised": args.optimised, "ratio_opt_vs_ref": rows[args.optimised].get("speedup_vs_ref"),
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
    arch = args.preset + (f"({args.dit})" if args.dit else "")
    print(f"DiT step {arch} {args.height}x{args.width} batch {args.batch} on {env.info['device_name']} "
          f"({env.info['threads']} threads, load {env.info['load_avg_1m']}); {flops / 1e9:.2f} GFLOP per step "
          f"(counted); median of {args.repeat} interleaved runs after {args.warmup} warm-up; "
          f"reference = {args.reference!r} (official procedure)")
    print(f"{'variant':<28}{'dtype':>6}{'median ms':>11}{'min ms':>9}{'1st call':>10}{'TFLOP/s':>9}{'MFU':>7}"
          f"{'x ref':>8}{'max|diff|':>11}")
    for name, r in rows.items():
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        diff = f"{r['max_abs_diff_vs_ref']:.2e}" if "max_abs_diff_vs_ref" in r else "-"
        ratio = f"{r['speedup_vs_ref']:.2f}" if "speedup_vs_ref" in r else "-"
        label = name + (" (extra)" if "note" in r else "")
        dt = DTYPE_TOKEN.get(getattr(torch, r["dtype"].split(".")[-1]), r["dtype"])
        print(f"{label:<28}{dt:>6}{r['median_ms']:>11.2f}{r['min_ms']:>9.2f}{r['first_call_ms'] or 0:>10.1f}"
              f"{r['tflops']:>9.3f}{mfu:>7}{ratio:>8}{diff:>11}")
    if any("note" in r for r in rows.values()):
        print("(extra) = explicit-softmax attention: not how the official code runs; shown for reference only")


if __name__ == "__main__":
    main()
