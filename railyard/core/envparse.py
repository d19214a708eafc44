"""Small parsers for environment variables that collect problems instead of raising one at a time.

Numbers are plain ASCII: Python's ``int()`` and ``float()`` also take full-width digits
(U+FF11, U+FF12), underscores (``1_000``), ``nan`` and ``inf``, none of which a setting means.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_INTEGER_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def parse_int(raw: str) -> int:
    """``raw`` (stripped) as an int written in ASCII digits; ValueError otherwise."""
    text = raw.strip()
    if not _INTEGER_RE.fullmatch(text):
        raise ValueError(f"{raw!r} is not a whole number")
    return int(text)


def parse_float(raw: str) -> float:
    """``raw`` (stripped) as a finite number written in ASCII; ValueError otherwise."""
    text = raw.strip()
    if not _NUMBER_RE.fullmatch(text) or not math.isfinite(value := float(text)):
        raise ValueError(f"{raw!r} is not a number")
    return value


def whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int, problems: list[str]) -> int:
    """``env[name]`` as an int in ``low..high``; on a bad value, record the problem and return ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse_int(raw)
    except ValueError:
        problems.append(f"{name}={raw!r} is not a whole number; use e.g. {name}={default}")
        return default
    if not low <= value <= high:
        problems.append(f"{name}={value} is out of range; use a whole number from {low} to {high}")
        return default
    return value
