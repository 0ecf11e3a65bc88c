"""Every numeric and list key of every section refuses the values its schema excludes, with one sentence."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from pipeline.common.params import load_params
from pipeline.common.schema import SchemaError, validate_section
from pipeline.ops.params_check import stage_schemas
from pipeline.testing.hostile import hostile_cases, with_value

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = stage_schemas(REPO)
PARAMS = load_params(REPO / "params.yaml")
CASES = [(section, path, value) for section, schema in SCHEMAS.items() for path, value in hostile_cases(schema)]


def test_the_table_covers_every_numeric_and_list_key() -> None:
    covered = {(section, path) for section, path, _ in CASES}
    for section, schema in SCHEMAS.items():
        for name, field in schema.model_fields.items():
            kind = getattr(field.annotation, "__origin__", field.annotation)
            if kind in (int, float, list):
                assert (section, (name,)) in covered, f"{section}.{name}"
    assert len(CASES) > 500  # 17 sections, about 170 keys


@pytest.mark.parametrize("section", sorted(SCHEMAS))
def test_params_yaml_is_valid(section: str) -> None:
    validate_section(SCHEMAS[section], PARAMS[section])


@pytest.mark.parametrize("section,path,value", CASES,
                         ids=[f"{s}.{'.'.join(p)}={v!r}" for s, p, v in CASES])
def test_a_bad_value_is_one_sentence_naming_key_and_value(section: str, path: tuple, value) -> None:
    with pytest.raises(SchemaError) as info:
        validate_section(SCHEMAS[section], with_value(PARAMS[section], path, value))
    message = str(info.value)
    assert "\n" not in message
    assert f"'{section}.{'.'.join(path)}'" in message
    assert "is not allowed" in message
    if isinstance(value, float) and math.isnan(value):
        assert "= nan" in message and ("finite" in message or "integer" in message)


@pytest.mark.parametrize("section,key", [("manifest", "limit"), ("priors", "seed"), ("train_decoder", "num_workers"),
                                         ("train_decoder", "first_map"), ("download", "retries"),
                                         ("cluster", "local_processes")])
def test_zero_is_valid_where_the_schema_says_so(section: str, key: str) -> None:
    validate_section(SCHEMAS[section], with_value(PARAMS[section], (key,), 0))


def test_the_cases_the_issue_named() -> None:
    cases = [(("priors", "n", math.nan), "= nan is not allowed: it must be a valid integer"),
             (("priors", "n", "abc"), "it must be a valid integer"),
             (("priors", "n", 2.5), "it must be a valid integer"),
             (("manifest", "seed", [1, 2]), "it must be a valid integer"),
             (("manifest", "limit", 2.5), "it must be a valid integer"),
             (("preprocess", "image_size", 64.5), "it must be a valid integer"),
             (("train_decoder", "lr", math.nan), "it must be a finite number"),
             (("train_encoder", "batch_size", 0), "it must be greater than or equal to 1"),
             (("train_encoder", "epochs", -1), "it must be greater than or equal to 1"),
             (("train_decoder", "epochs", -1), "it must be greater than or equal to 1"),
             (("train_decoder", "device", "bogus"), "must be auto, cpu, cuda, cuda:N or mps")]
    for (section, key, value), allowed in cases:
        with pytest.raises(SchemaError, match=allowed):
            validate_section(SCHEMAS[section], with_value(PARAMS[section], (key,), value))


def test_unknown_and_missing_keys_and_cross_key_rules() -> None:
    with pytest.raises(SchemaError, match=r"unknown params key 'priors.nn'"):
        validate_section(SCHEMAS["priors"], {**PARAMS["priors"], "nn": 3})
    params = dict(PARAMS["priors"])
    del params["n"]
    with pytest.raises(SchemaError, match=r"params key 'priors.n' is missing"):
        validate_section(SCHEMAS["priors"], params)
    with pytest.raises(SchemaError, match="nnodes = 2 needs rdzv_endpoint"):
        validate_section(SCHEMAS["gender"], {**PARAMS["gender"], "nnodes": 2})
