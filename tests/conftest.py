"""Shared test helpers: fixture paths, the ``needs_shared`` / ``numeric`` markers, small presets.

ROS-specific set-up lives in tests/ros/. Data outside the repository (the parity fixtures and the
full-size real frames with disparity and calibration) lives in ``../shared`` beside the checkout, or
wherever ``PPD_SHARED`` points. A test that needs it carries ``@pytest.mark.needs_shared(<path under
shared/>, ...)``: in a bare clone it is skipped with one line naming the missing path; where the
shared folder exists (CI), or with ``PPD_REQUIRE_SHARED=1``, a missing path is a failure instead, so
CI can never pass by skipping them. See docs/testing.md.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PPD_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
REAL = SHARED / "data" / "real"
# checkpoint manifests (keys and shapes of the full-size official checkpoints): small JSON, kept in
# the repository so that the preset-shape tests run in any clone; identical to shared/fixtures/manifests
MANIFESTS = REPO / "tests" / "data" / "manifests"
SKIP_PREFIX = "needs ../shared:"  # every skip for missing shared data starts so (docs/testing.md)

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# huggingface_hub in this process never reaches a hub (not even its own side requests): tests that fetch
# run the library in child processes with their own HF_* environment pointing at a loopback test hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # the discard port: nothing listens


def shared_required() -> bool:
    """True where the shared data must be complete: the folder exists, or PPD_REQUIRE_SHARED is set."""
    return SHARED.is_dir() or os.environ.get("PPD_REQUIRE_SHARED", "") not in ("", "0")


def require_shared(*relpaths: str) -> None:
    """Skip (bare clone) or fail (shared present / required) unless ``SHARED/relpath`` all exist."""
    missing = [r for r in relpaths if not (SHARED / r).exists()]
    if not missing:
        return
    what = ", ".join(missing)
    if shared_required():
        pytest.fail(f"shared data missing: {what} under {SHARED} (the folder exists or PPD_REQUIRE_SHARED "
                    f"is set, so these tests must run)", pytrace=False)
    pytest.skip(f"{SKIP_PREFIX} {what} not found under {SHARED} (put shared/ beside the clone or set PPD_SHARED)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_shared(*paths): paths under ../shared this test reads; "
                                       "skipped with a named reason when absent, failed when shared/ exists")
    config.addinivalue_line("markers", "numeric: compares floating-point results; rerun by ./bootstrap.sh test "
                                       "under ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_shared"):
        require_shared(*mark.args)


def manifest(name: str) -> dict[str, list[int]]:
    """{key: shape} of a full-size official checkpoint (the ``_meta`` entry dropped)."""
    data = json.loads((MANIFESTS / name).read_text())
    return {k: list(v) for k, v in data.items() if k != "_meta"}


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    require_shared("fixtures")
    return FIXTURES
