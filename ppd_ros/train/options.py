"""Command-line options from a training config dataclass (``ppd-ros train``, ``python -m ppd_ros.train.*``).

One ``--field-name`` option per field, typed and defaulted from the dataclass, so a config field is a
flag without being listed twice.
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TypeVar

T = TypeVar("T")


def add_config_options(parser: argparse.ArgumentParser, config_cls: type) -> None:
    defaults = config_cls()
    for f in fields(config_cls):
        value = getattr(defaults, f.name)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(value), default=value,
                            help=f"(default {value})")


def config_from_args(config_cls: type[T], args: argparse.Namespace) -> T:
    return config_cls(**{f.name: getattr(args, f.name) for f in fields(config_cls)})
