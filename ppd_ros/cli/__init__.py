"""The ``ppd-ros`` command: subcommands live in their own modules and register here.

Each module in ``SUBCOMMANDS`` exposes ``add_parser(subparsers)`` which adds its subcommand and
sets ``func`` (taking the parsed args, returning an exit code). Modules are imported only when
present, so the ROS-free core works without the ROS subcommands' dependencies.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ["image", "demo", "ros", "train", "evaluate", "weights"]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with ``only`` that one (its module alone is imported)."""
    ap = argparse.ArgumentParser(prog="ppd-ros", description="Pixel-Perfect Depth for ROS 2 (offline tools, demo, node runner)")
    sub = ap.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            # the subcommand's module or one of its optional dependencies (e.g. rclpy on a
            # machine without ROS) is absent: the other subcommands still work
            continue
        mod.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # import only the named subcommand's module: `ppd-ros weights list` needs no torch
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(only).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
