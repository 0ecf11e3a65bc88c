"""One validated configuration path: each stage's ``params.yaml`` section against a schema declared beside the stage.

A stage's schema is a :class:`Section` subclass in its entry point (``stages/<name>.py``), so that an edit to one
stage's schema reruns that stage only; the keys the training stages share come from one small sub-schema
(``pipeline.training.params.TrainingKeys``). Every key is required (no default written in code can shadow
``params.yaml``), unknown keys are refused, and each key declares its type, range, finiteness and choices:

- integers are integers (``2.5``, ``"3"``, ``true`` and ``[1]`` are refused, never truncated or cast);
- floats are finite (NaN and infinity are refused) and an integer is accepted where a float is meant;
- choices are ``Literal`` types; lists declare their elements' rules.

:func:`validate_section` turns the first violation into one sentence that names the key, the value and what is
allowed; ``pipeline.common.stage`` prints it as ``<stage>: error: ...`` with exit code 2 before the stage writes
anything or relaunches itself under torchrun. ``configs/paper.yaml`` and ``dvc exp run -S`` overrides reach the
stages as ``params.yaml`` and go through the same schemas (``python -m pipeline.ops.params_check`` checks a whole
file at once); ``docs/params.md`` is generated from them.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Mapping

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from pipeline.common.errors import PipelineError

__all__ = ["Device", "Fraction", "NonNegativeFloat", "NonNegativeInt", "PathText", "PositiveFloat", "PositiveInt",
           "Section", "Seed", "SchemaError", "describe_value", "one_sentence", "validate_section", "Field"]


class SchemaError(PipelineError, ValueError):
    """A params value that its section's schema does not allow (one sentence: key, value, what is allowed)."""


class Section(BaseModel):
    """Base of every section schema: every key required, no unknown key, strict types, finite floats."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    #: the params.yaml section this schema validates
    SECTION: ClassVar[str] = ""


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device_name(value: str) -> str:
    if not _DEVICE.match(value):
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
    return value


PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, description="random seed")]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
#: a device name the stages accept: auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps
Device = Annotated[str, AfterValidator(_device_name)]
#: a file or directory path as text ("" where the key says it means none)
PathText = str


def describe_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed(error: Mapping[str, Any]) -> str:
    """What the schema allows, from pydantic's message, as the end of a sentence."""
    kind, message = error["type"], str(error["msg"])
    if kind == "extra_forbidden":
        return "this key is unknown"
    if kind == "missing":
        return "the key is missing"
    if kind == "finite_number":
        return "it must be a finite number"
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    message = re.sub(r"^Input should be ", "it must be ", message)
    message = re.sub(r"^(List|String|Tuple) should (have|match) ", r"it must \2 ", message).replace(" after validation", "")
    message = message[0].lower() + message[1:] if message else message
    return message.rstrip(".")


def one_sentence(exc: ValidationError, section: str) -> str:
    """The first violation of ``exc`` as ``section.key = value is not allowed: <what is>``."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    # a list element is reported by index: name the list key and the element
    if not loc:  # a rule across keys (a model validator)
        return f"params section '{section}' is not allowed: {_allowed(error)}"
    key = ".".join(part for part in loc if not part.isdigit())
    index = next((part for part in loc if part.isdigit()), None)
    where = f"{section}.{key}" if key else section
    if error["type"] == "missing":
        return f"params key '{where}' is missing from params.yaml"
    if error["type"] == "extra_forbidden":
        return f"unknown params key '{where}'"
    element = f" (element {index})" if index is not None else ""
    return f"params key '{where}'{element} = {describe_value(error.get('input'))} is not allowed: {_allowed(error)}"


def validate_section(schema: type[Section], values: Mapping[str, Any], section: str | None = None) -> Section:
    """``values`` checked against ``schema``; SchemaError (one sentence) at the first value it does not allow."""
    section = section or schema.SECTION
    if not isinstance(values, Mapping):
        raise SchemaError(f"params section '{section}' must be a mapping of keys, not {describe_value(values)}")
    try:
        return schema.model_validate(dict(values))
    except ValidationError as exc:
        raise SchemaError(one_sentence(exc, section)) from None
