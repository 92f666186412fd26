"""``python -m ppd_ros.parity DIR [DIR ...]``: one line per fixture output, then 'N passed, M failed'."""
from __future__ import annotations

import argparse
import sys

import torch

from . import discover_handlers, find_fixtures, run_fixture


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ppd_ros.parity", description=__doc__)
    ap.add_argument("dirs", nargs="+", help="fixture folders or roots to walk for meta.json")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    discover_handlers()
    passed = failed = 0
    paths = list(find_fixtures(args.dirs))
    if not paths:
        print(f"no fixtures (meta.json) found under {' '.join(args.dirs)}")
        failed += 1
    for path in paths:
        for c in run_fixture(path):
            status = "PASS" if c.passed else "FAIL"
            note = f"  ({c.note})" if c.note else ""
            print(f"{status} {path.name}:{c.name} max_abs={c.max_abs:.3g} tol[{c.tolerance}]{note}", flush=True)
            passed += c.passed
            failed += not c.passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
