"""Checks of a settings dataclass's fields against their type annotations (the subset of
annotations cknet's configs use), with messages that name the field: shared by
`CKNetConfig`, `cknet.training.TrainingConfig` and `cknet.GenerationConfig`."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal


def check_field_types(instance: Any) -> None:
    """Raise a `ValueError` naming the first field of a dataclass whose value does not
    fit its annotation."""
    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if not _matches(value, hints[f.name]):
            raise ValueError(
                f"{type(instance).__name__}.{f.name} must be {_describe(hints[f.name])}, "
                f"got {value!r} ({type(value).__name__})"
            )


def check_known_keys(cls: type, data: dict[str, Any]) -> None:
    """Raise a `ValueError` naming the keys of ``data`` that are not fields of ``cls``."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; valid keys are: {', '.join(names)}")


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the type annotation ``hint`` (the subset used above)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(_matches(v, a) for v, a in zip(value, args)))
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "None"
    if origin is tuple:
        return f"a sequence of {len(args)} numbers"
    return getattr(hint, "__name__", str(hint))
