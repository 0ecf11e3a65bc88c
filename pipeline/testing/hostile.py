"""Hostile but plausible params values, derived from each key's schema (``pipeline.common.schema``).

``bad_values(field)`` lists the values a key's declared type and range exclude: NaN, infinity, a string, a list
where a number is meant (and a number where a list is), a fraction where an integer is meant, the first value
past each bound, a choice that does not exist, and bad list elements. Zero or a negative value is bad only where
the schema's bounds say so (0 is valid for ``manifest.limit``, seeds, ``num_workers`` and more).
"""
from __future__ import annotations

import math
import typing
from typing import Any, Iterator

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def _bounds(metadata: list[Any]) -> list[Any]:
    """Values just past each declared bound."""
    out = []
    for rule in metadata:
        if isinstance(rule, at.Ge):
            out.append(rule.ge - 1 if isinstance(rule.ge, int) else rule.ge - 0.5)
        elif isinstance(rule, at.Gt):
            out.append(rule.gt)
        elif isinstance(rule, at.Le):
            out.append(rule.le + 1)
        elif isinstance(rule, at.Lt):
            out.append(rule.lt)
    return out


def _for_type(annotation: Any, metadata: list[Any]) -> list[Any]:
    origin = typing.get_origin(annotation)
    if annotation is int:
        return ["3", [1], 2.5, math.nan, math.inf, True, *_bounds(metadata)]
    if annotation is float:
        return ["0.5", [0.5], math.nan, math.inf, -math.inf, *_bounds(metadata)]
    if annotation is bool:
        return ["yes", 1, [True]]
    if origin is typing.Literal:
        return ["no_such_choice", 1, [typing.get_args(annotation)[0]]]
    if origin is list:
        (element,) = typing.get_args(annotation)
        element_meta: list[Any] = []
        if typing.get_origin(element) is typing.Annotated:
            element, *extra = typing.get_args(element)
            for item in extra:
                element_meta += item.metadata if isinstance(item, FieldInfo) else [item]
        bad = [5, "a string", *[[value] for value in _for_type(element, element_meta) if not isinstance(value, list)]]
        for rule in metadata:
            if isinstance(rule, at.MinLen) and rule.min_length > 0:
                bad.append([])
            if isinstance(rule, at.MaxLen):
                bad.append([_valid_element(element)] * (rule.max_length + 1))
        return bad
    if annotation is str:
        return [5, ["a"]] + (["not a device"] if any("device" in repr(m) for m in metadata) else [])
    return []


def _valid_element(element: Any) -> Any:
    if typing.get_origin(element) is typing.Literal:
        return typing.get_args(element)[0]
    return {int: 1, float: 1.0, str: "a", bool: True}.get(element, 1)


def bad_values(field: FieldInfo) -> list[Any]:
    """The values ``field``'s declared type and range exclude."""
    return _for_type(field.annotation, list(field.metadata))


def hostile_cases(schema: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(key path, bad value)`` for every key of ``schema`` (nested sections included)."""
    for name, field in schema.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from hostile_cases(field.annotation, (*prefix, name))
        else:
            for value in bad_values(field):
                yield (*prefix, name), value


def with_value(section: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``section`` with the key at ``path`` set to ``value``."""
    out = dict(section)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = with_value(dict(out[path[0]]), path[1:], value)
    return out
