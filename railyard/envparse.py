"""Small parsers for environment variables that collect problems instead of raising one at a time."""

from __future__ import annotations

from collections.abc import Mapping


def whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str]) -> int:
    """``env[name]`` as an int in ``low..high``; on a bad value, record the problem and return ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a whole number; use e.g. {name}={default}")
        return default
    if not low <= value <= high:
        problems.append(f"{name}={value} is out of range; use a whole number from {low} to {high}")
        return default
    return value
