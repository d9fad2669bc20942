"""Config loading: YAML + overrides, type validation, errors that name the key, help for every field."""

import dataclasses

import pytest

from instructgpt.config import ConfigError, PrepareConfig, describe, load_config, option, split_override


def test_defaults_and_nested_overrides():
    config = load_config(PrepareConfig, overrides=["near_dedup.threshold=0.7", "lang.keep=[zh]", "workers=2"])
    assert config.near_dedup.threshold == 0.7
    assert config.lang.keep == ["zh"]
    assert config.workers == 2
    assert config.length.min_units == 50  # untouched default


def test_yaml_file_then_overrides_win(tmp_path):
    path = tmp_path / "prepare.yaml"
    path.write_text("workers: 3\nlength:\n  min_units: 10\n  max_units: 500\n")
    config = load_config(PrepareConfig, path, ["length.max_units=900"])
    assert (config.workers, config.length.min_units, config.length.max_units) == (3, 10, 900)


def test_dict_field_keys_are_typed():
    config = load_config(PrepareConfig, overrides=["repeated_ngrams.max_top_ngram_fraction={2: 0.5, 3: 0.4}"])
    assert config.repeated_ngrams.max_top_ngram_fraction == {2: 0.5, 3: 0.4}


def test_int_accepted_for_float_but_bool_not_for_int():
    assert load_config(PrepareConfig, overrides=["near_dedup.threshold=1"]).near_dedup.threshold == 1.0
    with pytest.raises(ConfigError, match=r"^length.min_units: expected int, got True \(bool\)$"):
        load_config(PrepareConfig, overrides=["length.min_units=true"])


def test_string_fields_take_override_text_verbatim():
    assert load_config(PrepareConfig, overrides=["text_field=yes"]).text_field == "yes"
    assert load_config(PrepareConfig, overrides=["text_field=123"]).text_field == "123"


def test_unknown_key_names_key_and_choices():
    with pytest.raises(
        ConfigError, match=r"^near_dedup.treshold: unknown key; expected one of: enabled, threshold"
    ):
        load_config(PrepareConfig, overrides=["near_dedup.treshold=0.5"])
    with pytest.raises(ConfigError, match=r"^wrokers: unknown key"):
        load_config(PrepareConfig, overrides=["wrokers=2"])


def test_wrong_types_name_key_and_expectation(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^output_format: expected one of jsonl\|arrow, got 'csv' \(str\)$"
    ):
        load_config(PrepareConfig, overrides=["output_format=csv"])
    with pytest.raises(ConfigError, match=r"^lang.keep\[1\]: expected str, got 3 \(int\)$"):
        load_config(PrepareConfig, overrides=["lang.keep=[zh, 3]"])
    path = tmp_path / "bad.yaml"
    path.write_text("near_dedup: 5\n")
    with pytest.raises(ConfigError, match=r"^near_dedup: expected a mapping, got 5 \(int\)$"):
        load_config(PrepareConfig, path)


def test_bad_yaml_and_bad_override_syntax(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workers: [1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(PrepareConfig, path)
    with pytest.raises(ConfigError, match="must look like key=value"):
        split_override("workers")


def test_every_field_is_documented():
    rows = describe(PrepareConfig)
    keys = [key for key, *_ in rows]
    assert "near_dedup.threshold" in keys and "segment.remove_stopwords" in keys
    assert all(help_text for *_, help_text in rows)


def test_option_defaults_are_not_shared_between_instances():
    @dataclasses.dataclass
    class Example:
        items: list[str] = option(["a"], "items")

    first, second = Example(), Example()
    first.items.append("b")
    assert second.items == ["a"]


def test_overriding_one_key_of_a_section_keeps_the_parents_defaults_for_the_rest():
    from instructgpt.config import GenerateConfig, describe

    config = load_config(GenerateConfig, overrides=["model.dtype=bfloat16", "sampling.top_k=5"])
    assert config.model.name == "" and config.model.dtype == "bfloat16"  # GenerateConfig's own default kept
    assert config.sampling.top_k == 5 and config.sampling.top_p == 1.0
    defaults = {key: default for key, _, default, _ in describe(GenerateConfig)}
    assert defaults["model.name"] == "''" and defaults["sampling.temperature"] == "0.0"
