"""Option parsing shared by the CLI modules."""
from __future__ import annotations

import json

import click


def parse_sets(values, option: str = "--set") -> dict:
    """``key=value`` pairs; values parsed as JSON when possible (numbers, booleans, lists), else kept as text."""
    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint=option)
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def split_list(values) -> list[str] | None:
    """Repeatable options that also accept comma lists: ``--views 01,04 --views 07``."""
    items = [v for value in values for v in str(value).split(",") if v]
    return items or None
