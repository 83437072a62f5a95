"""Parsing shared by the CLI modules."""
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
