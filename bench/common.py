"""Shared benchmark plumbing: arguments, warm-up + synchronised timing, memory, FLOP rates, JSON line.

Conventions (architecture rule 14, after nanoGPT ``bench.py`` and gpt-fast): warm-up runs are
reported apart from steady state; the device is synchronised before every clock read; variants that
are compared are timed interleaved (A B A B ...) so that load from other processes on a shared
machine hits them alike; medians are reported; the last stdout line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # scripts run as ``python bench/x.py`` from anywhere
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ppd_ros.runtime import resolve_device, resolve_dtype, synchronize  # noqa: E402

# Dense (no sparsity) datasheet peaks in TFLOP/s, by compute dtype. Leads, not readings: the GPU
# script also measures a large bf16 matmul on the card and reports MFU against both.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bfloat16": 756.5, "float16": 756.5, "float32": 51.2},
    "H100 NVL": {"bfloat16": 835.5, "float16": 835.5, "float32": 60.0},
    "H100": {"bfloat16": 989.4, "float16": 989.4, "float32": 66.9},  # SXM
    "H200": {"bfloat16": 989.4, "float16": 989.4, "float32": 66.9},
}


def base_parser(description: str, preset: str = "fixture_ppd_dit_small", size: int = 512) -> argparse.ArgumentParser:
    """The arguments every bench script takes (architecture rule 14)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--preset", default=preset, help="DiT architecture preset (ppd_ros.config)")
    ap.add_argument("--semantics-preset", default="fixture_da2_vit_small",
                    help="semantic encoder preset (DA2 ViT) for pipeline benches")
    ap.add_argument("--height", type=int, default=size)
    ap.add_argument("--width", type=int, default=size)
    ap.add_argument("--steps", type=int, default=4, help="denoising steps per frame")
    ap.add_argument("--batch", type=int, default=1, help="frames per call (e.g. several cameras)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                    help="compute (autocast) dtype of every path, the reference included (auto: bf16 on CUDA, "
                         "fp32 on CPU, as the node)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the denoiser step (opt-in)")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode when --compile")
    ap.add_argument("--cudagraph", action="store_true", help="capture the denoiser step as a CUDA graph")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per variant first")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-plain", action="store_true", help="skip the reference path (its ratios are then absent)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="override the card's peak for MFU")
    ap.add_argument("--json-out", default="", help="also append the JSON line to this file")
    return ap


@dataclass
class Env:
    device: torch.device
    dtype: torch.dtype
    info: dict[str, object] = field(default_factory=dict)


def setup(args: argparse.Namespace) -> Env:
    """Seed, threads, device and dtype; environment facts for the JSON line."""
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    info: dict[str, object] = {
        "torch": torch.__version__, "device": str(device), "device_name": device_name(device),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    return Env(device, dtype, info)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def peak_tflops(device: torch.device, dtype: torch.dtype, override: float = 0.0) -> float | None:
    """Datasheet dense peak for the card and dtype; None on CPU or an unknown card."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    key = str(dtype).replace("torch.", "")
    for card in ("H100 PCIe", "H100 NVL", "H100", "H200"):  # most specific first
        if card in name:
            return PEAK_TFLOPS[card].get(key)
    return None


@dataclass
class Timing:
    """Milliseconds of the warm-up runs and the timed runs of one variant."""

    warmup_ms: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ms) if self.ms else float("nan")

    def summary(self) -> dict[str, float]:
        return {"median_ms": round(self.median, 3), "min_ms": round(min(self.ms), 3),
                "max_ms": round(max(self.ms), 3), "n": len(self.ms)}


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(milliseconds, result) of one call, with the device synchronised before both clock reads."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return (time.perf_counter() - t0) * 1e3, out


def measure_interleaved(variants: dict[str, Callable[[], object]], device: torch.device,
                        warmup: int, repeat: int) -> dict[str, Timing]:
    """Warm every variant up, then time them round-robin ``repeat`` times."""
    out = {name: Timing() for name in variants}
    for name, fn in variants.items():
        for _ in range(warmup):
            out[name].warmup_ms.append(timed(fn, device)[0])
    for _ in range(repeat):
        for name, fn in variants.items():
            out[name].ms.append(timed(fn, device)[0])
    return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def reset_cuda_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cuda_allocated_mb(device: torch.device) -> float:
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def cuda_peak_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def rates(flops: int, ms: float, peak: float | None) -> dict[str, float | None]:
    """Achieved TFLOP/s for ``flops`` done in ``ms``, and MFU against ``peak`` (TFLOP/s)."""
    tflops = flops / (ms * 1e-3) / 1e12 if ms > 0 else float("nan")
    return {"tflops": round(tflops, 4), "mfu": round(tflops / peak, 4) if peak else None}


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def emit(record: dict[str, object], json_out: str = "") -> str:
    """Print the record as the final stdout line (and append it to ``json_out``)."""
    line = json.dumps(record, default=str)
    print(line, flush=True)
    if json_out:
        with open(json_out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return line


def build_random(factory: Callable[[], torch.nn.Module], device: torch.device, seed: int,
                 std: float = 0.02) -> torch.nn.Module:
    """A model with random weights (same cost as real ones), built on ``meta`` then filled on device.

    Why not the constructor's init: PPD's adaLN-Zero init makes the DiT output exactly zero, which
    would benchmark and compare a trivial function. Norm weights are drawn around 1.
    """
    with torch.device("meta"):
        model = factory()
    if any(True for _ in model.buffers()):  # buffers have meaningful values: build them for real
        model = factory()
    model = model.to_empty(device=device) if _on_meta(model) else model.to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, std, generator=g)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    return model.eval().requires_grad_(False)


def _on_meta(model: torch.nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


def profile_to_file(fn: Callable[[], object], device: torch.device, path: str, calls: int = 2,
                    rows: int = 25) -> dict[str, float]:
    """torch.profiler table of ``calls`` runs written to ``path``; returns wall ms and device-busy share.

    A busy share well under 1 means the device waits on the host (launch-bound), not on arithmetic.
    """
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()
    synchronize(device)
    with profile(activities=acts) as prof:
        wall_ms = sum(timed(fn, device)[0] for _ in range(calls))
    avg = prof.key_averages()
    sort = "self_cpu_time_total"
    if device.type == "cuda":  # renamed from self_cuda_time_total in torch 2.4
        sort = "self_device_time_total" if avg and hasattr(avg[0], "self_device_time_total") else "self_cuda_time_total"
    table = avg.table(sort_by=sort, row_limit=rows)
    busy_us = 0.0
    if device.type == "cuda":
        busy_us = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) for e in avg)
    Path(path).write_text(f"{calls} calls, {wall_ms:.2f} ms wall\n{table}\n", encoding="utf-8")
    out = {"wall_ms_per_call": round(wall_ms / calls, 3)}
    if device.type == "cuda":
        out["device_busy_ms_per_call"] = round(busy_us / 1e3 / calls, 3)
        out["device_busy_share"] = round(busy_us / 1e3 / wall_ms, 3)
    return out


def ceilings(device: torch.device, n: int = 8192, copy_mb: int = 2048) -> dict[str, float]:
    """Measured ceilings (METHOD.md): a large bf16 matmul's TFLOP/s and a device-to-device copy's GB/s
    (bytes read + written), each the median of 10 after 3 warm-ups, on random data (never zeros)."""
    if device.type != "cuda":
        return {}
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    src = torch.randn(copy_mb * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    mm = measure_interleaved({"mm": lambda: a @ b, "copy": lambda: dst.copy_(src)}, device, 3, 10)
    return {"bf16_matmul_tflops": round(2 * n**3 / (mm["mm"].median * 1e-3) / 1e12, 1),
            "d2d_copy_gbps": round(2 * src.numel() * 4 / (mm["copy"].median * 1e-3) / 1e9, 1)}


def summarize(path: str) -> None:
    """One line per JSON record of a results file: the figures the issue's targets are about."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        kind = r.get("bench", "?")
        if kind == "dit_step":
            parts = [f"{n}: {v['median_ms']:.2f} ms, {v['tflops']:.3g} TF/s, MFU {v['mfu'] or 0:.0%}, "
                     f"x{v.get('speedup_vs_ref', '-')} vs ref, 1st {v['first_call_ms']:.0f} ms"
                     for n, v in r["variants"].items()]
            print(f"dit_step {r['preset']} {r['height']}x{r['width']} b{r['batch']}: " + "; ".join(parts))
        elif kind == "pipeline":
            parts = [f"{n}: {p['ms_per_frame']:.1f} ms/frame ({p['fps']:.1f} FPS), "
                     f"steps {p['stages_ms']['dit_total']:.1f} ms, semantics {p['stages_ms']['semantics']:.1f} ms, "
                     f"DiT MFU {p['dit_step']['mfu'] or 0:.0%}, CUDA {p['cuda_peak_mb'] or 0:.0f} MiB"
                     for n, p in r["paths"].items()]
            extra = "".join(f"; {n} x{p['ratio_vs_reference']} vs reference, max|diff| "
                            f"{p['max_abs_diff_vs_reference']:.2e}" for n, p in r["paths"].items()
                            if "ratio_vs_reference" in p and n != "reference")
            print(f"pipeline {r['preset']} {r['height']}x{r['width']} {r['step_mode']}: " + "; ".join(parts) + extra)
        else:
            print(f"{kind}: {line[:400]}")


if __name__ == "__main__":  # python bench/common.py ceilings | summarize FILE
    if sys.argv[1:2] == ["ceilings"]:
        emit({"bench": "ceilings", "device_name": device_name(resolve_device("auto")),
              **ceilings(resolve_device("auto"))})
    elif sys.argv[1:2] == ["summarize"]:
        summarize(sys.argv[2])
