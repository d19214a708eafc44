"""Job arguments checked against the types the registry declares for them.

Arguments come from other services, as data: ``dry_run="false"`` must not be a dry run
(a non-empty string is truthy), and a list where a name belongs must not end in a raw
TypeError deep inside a job. Each job's parameters are declared in railyard.core.registry with one
of a few JSON-shaped kinds; the worker and ``railyard.core.client.enqueue`` refuse anything else
with one clear permanent error that names every bad argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from railyard.core.errors import PermanentError

Kind = Literal["str", "bool", "int", "number", "str list", "int or str"]
SHOWN_CHARS = 40

_EXAMPLES: dict[str, str] = {
    "str": 'a string, e.g. "app"',
    "bool": "true or false (a JSON boolean, not a string)",
    "int": "a whole number, e.g. 3",
    "number": "a number, e.g. 1.5",
    "str list": 'a list of strings, e.g. ["public.orders"]',
    "int or str": "a whole number or a string",
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    nullable: bool = True  # None (JSON null) means "the default"

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind == "str list":
            return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


class JobArgumentError(PermanentError):
    """A job was given arguments its function does not take, or of the wrong type."""


def argument_problems(func: str, params: Sequence[Param], args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
    """Every way ``args``/``kwargs`` do not fit ``params``; empty when they do."""
    by_name = {p.name: p for p in params}
    given: dict[str, Any] = {}
    problems: list[str] = []
    if len(args) > len(params):
        problems.append(f"{func} takes at most {len(params)} positional arguments, got {len(args)}")
    for param, value in zip(params, args, strict=False):
        given[param.name] = value
    for name, value in kwargs.items():
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            problems.append(f"{func} has no argument {_shown(name)}; its arguments are: {known}")
        elif name in given:
            problems.append(f"{func} got argument {name!r} twice")
        else:
            given[name] = value
    for name, value in given.items():
        param = by_name[name]
        if not param.accepts(value):
            problems.append(
                f"{func} argument {name!r} is {_shown(value)} ({type(value).__name__}); it must be "
                f"{_EXAMPLES[param.kind]}{' or null' if param.nullable else ''}"
            )
    return problems


def check_arguments(func: str, params: Sequence[Param], args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    problems = argument_problems(func, params, args, kwargs)
    if problems:
        raise JobArgumentError("; ".join(problems))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
