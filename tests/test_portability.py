"""The suite's own portability (issue 14): in-repository data copies and the AVX2 rerun's environment."""
from __future__ import annotations

import os

import pytest
import torch

from .conftest import FIXTURES, MANIFESTS, SHARED, SKIP_PREFIX, require_shared


@pytest.mark.needs_shared("fixtures/manifests")
def test_bundled_manifests_equal_the_shared_ones() -> None:
    shared = sorted(p.name for p in (FIXTURES / "manifests").glob("*.json"))
    assert shared == sorted(p.name for p in MANIFESTS.glob("*.json"))
    for name in shared:
        assert (MANIFESTS / name).read_bytes() == (FIXTURES / "manifests" / name).read_bytes(), name


def test_missing_shared_data_skips_with_its_path_or_fails_where_shared_exists(monkeypatch) -> None:
    monkeypatch.delenv("PPD_REQUIRE_SHARED", raising=False)
    if SHARED.is_dir():
        with pytest.raises(pytest.fail.Exception, match="no_such_fixture"):
            require_shared("fixtures/no_such_fixture")
        return
    with pytest.raises(pytest.skip.Exception, match=f"^{SKIP_PREFIX} fixtures/no_such_fixture not found"):
        require_shared("fixtures/no_such_fixture")
    monkeypatch.setenv("PPD_REQUIRE_SHARED", "1")  # CI without the folder: a failure, never a skip
    with pytest.raises(pytest.fail.Exception):
        require_shared("fixtures/no_such_fixture")


@pytest.mark.numeric
def test_aten_capability_override_is_in_effect() -> None:
    """./bootstrap.sh test reruns the numeric tests with ATEN_CPU_CAPABILITY=avx2: torch must honour it."""
    want = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    got = torch.backends.cpu.get_cpu_capability().lower()
    assert got == want if want not in ("", "default") else got, got
