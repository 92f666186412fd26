"""The ``ppd-ros`` command: subcommands live in their own modules and register here.

Each module in ``SUBCOMMANDS`` exposes ``add_parser(subparsers)`` which adds its subcommand and
sets ``func`` (taking the parsed args, returning an exit code). Modules are imported only when
present, so the ROS-free core works without the ROS subcommands' dependencies.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ["image", "demo", "ros", "train", "evaluate"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ppd-ros", description="Pixel-Perfect Depth for ROS 2 (offline tools, demo, node runner)")
    sub = ap.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            # the subcommand's module or one of its optional dependencies (e.g. rclpy on a
            # machine without ROS) is absent: the other subcommands still work
            continue
        mod.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
