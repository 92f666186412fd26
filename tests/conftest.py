"""Shared test helpers: fixture paths and small presets. ROS-specific set-up lives in tests/ros/."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PPD_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
MANIFESTS = FIXTURES / "manifests"
REAL = SHARED / "data" / "real"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def manifest(name: str) -> dict[str, list[int]]:
    """{key: shape} of a full-size official checkpoint (the ``_meta`` entry dropped)."""
    data = json.loads((MANIFESTS / name).read_text())
    return {k: list(v) for k, v in data.items() if k != "_meta"}


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"parity fixtures not found at {FIXTURES} (set PPD_SHARED)")
    return FIXTURES
