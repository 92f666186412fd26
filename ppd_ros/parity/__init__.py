"""Parity harness: run fixtures produced by the official code and compare within their tolerances.

Each fixture folder holds ``meta.json`` (its ``fixture`` field names the kind), ``weights``,
``inputs`` and ``outputs`` safetensors. Handlers register per kind with ``@handles(kind)``; modules
in this package are discovered automatically, so each model family keeps its own file.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from safetensors.torch import load_file


@dataclass
class Check:
    """One compared output."""

    name: str
    max_abs: float
    tolerance: str
    passed: bool
    note: str = ""


class Fixture:
    """Lazy access to one fixture folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta = json.loads((path / "meta.json").read_text())

    @property
    def kind(self) -> str:
        return str(self.meta.get("fixture", "<missing 'fixture' field>"))

    def _load(self, name: str) -> dict[str, torch.Tensor]:
        f = self.path / f"{name}.safetensors"
        return load_file(str(f)) if f.exists() and f.stat().st_size > 16 else {}

    @cached_property
    def inputs(self) -> dict[str, torch.Tensor]:
        return self._load("inputs")

    @cached_property
    def outputs(self) -> dict[str, torch.Tensor]:
        return self._load("outputs")

    @cached_property
    def weights(self) -> dict[str, torch.Tensor]:
        return self._load("weights")

    def tol(self, name: str, default: tuple[float, float] = (1e-4, 1e-4)) -> tuple[float, float]:
        """(atol, rtol) for an output, honouring ``prefix.*`` entries in meta['tolerance']."""
        table = self.meta.get("tolerance", {})
        entry = table.get(name)
        if entry is None:
            for key, val in table.items():
                if key.endswith("*") and name.startswith(key[:-1]):
                    entry = val
                    break
        if isinstance(entry, dict) and "atol" in entry:
            return float(entry["atol"]), float(entry.get("rtol", 0.0))
        return default


Handler = Callable[[Fixture], Iterable[Check]]
HANDLERS: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for k in kinds:
            HANDLERS[k] = fn
        return fn
    return deco


def compare(name: str, got: torch.Tensor | np.ndarray, want: torch.Tensor | np.ndarray,
            atol: float, rtol: float = 0.0) -> Check:
    """allclose-style check (|got - want| <= atol + rtol |want|), reporting the max abs error."""
    g = torch.as_tensor(np.asarray(got) if isinstance(got, np.ndarray) else got).detach().double().cpu()
    w = torch.as_tensor(np.asarray(want) if isinstance(want, np.ndarray) else want).detach().double().cpu()
    if g.shape != w.shape:
        return Check(name, float("inf"), f"atol {atol:g}", False, f"shape {tuple(g.shape)} vs {tuple(w.shape)}")
    both_nan = torch.isnan(g) & torch.isnan(w)
    same_inf = torch.isinf(g) & torch.isinf(w) & (g == w)
    diff = (g - w).abs()
    diff = torch.where(both_nan | same_inf, torch.zeros_like(diff), diff)
    diff = torch.nan_to_num(diff, nan=float("inf"))
    ok = bool((diff <= atol + rtol * torch.nan_to_num(w.abs(), nan=0.0, posinf=0.0)).all())
    return Check(name, float(diff.max()) if diff.numel() else 0.0, f"atol {atol:g} rtol {rtol:g}", ok)


def compare_fx(fx: Fixture, name: str, got: torch.Tensor, key: str | None = None,
               default: tuple[float, float] = (1e-4, 1e-4)) -> Check:
    """Compare ``got`` with ``fx.outputs[key or name]`` at the fixture's tolerance for ``name``."""
    atol, rtol = fx.tol(name, default)
    return compare(name, got, fx.outputs[key or name], atol, rtol)


IMPORT_ERRORS: dict[str, str] = {}


def discover_handlers() -> dict[str, str]:
    """Import every module of this package so their ``@handles`` run; returns {module: error}."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{mod.name}")
        except Exception as exc:  # noqa: BLE001 - one broken family must not hide the others
            IMPORT_ERRORS[mod.name] = f"{type(exc).__name__}: {exc}"
    return IMPORT_ERRORS


def find_fixtures(roots: Iterable[str | Path]) -> Iterator[Path]:
    for root in roots:
        root = Path(root)
        if (root / "meta.json").is_file():
            yield root
            continue
        yield from sorted(p.parent for p in root.rglob("meta.json"))


def run_fixture(path: Path) -> list[Check]:
    """All checks of one fixture; an unknown kind or a crash is one failed check."""
    try:
        fx = Fixture(path)
    except (OSError, ValueError) as exc:
        return [Check("meta.json", float("inf"), "-", False, f"unreadable: {exc}")]
    handler = HANDLERS.get(fx.kind)
    if handler is None:
        why = f"unknown fixture kind {fx.kind!r}"
        if IMPORT_ERRORS:
            why += f" (handler modules that failed to import: {IMPORT_ERRORS})"
        return [Check("kind", float("inf"), "-", False, why)]
    try:
        with torch.inference_mode():
            return list(handler(fx))
    except Exception as exc:  # noqa: BLE001 - a broken fixture run is reported, not raised
        return [Check("run", float("inf"), "-", False, f"{type(exc).__name__}: {exc}")]
