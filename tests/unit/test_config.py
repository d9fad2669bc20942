"""Config loading: YAML + overrides, type validation, errors that name the key, help for every field."""

import dataclasses

import pytest

from instructgpt.config import (
    ConfigError,
    PrepareConfig,
    describe,
    from_mapping,
    load_config,
    option,
    split_override,
    to_dict,
)


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
    with pytest.raises(ConfigError, match=r"bad\.yaml: near_dedup: expected a mapping, got 5 \(int\)$"):
        load_config(PrepareConfig, path)


def test_bad_yaml_and_bad_override_syntax(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workers: [1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:2:1: not valid YAML: .*expected ',' or ']'"):
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


# ----------------------------------------------------------------------------------- field constraints


@pytest.mark.parametrize(
    ("cls", "override", "message"),
    [
        ("PretrainConfig", "train.steps=-5", r"^train\.steps: expected int ≥ 1, got -5$"),
        ("PretrainConfig", "train.grad_accum=0", r"^train\.grad_accum: expected int ≥ 1, got 0$"),
        ("PretrainConfig", "train.betas=[0.9]", r"^train\.betas: expected list\[float\] of length 2, got"),
        ("PretrainConfig", "train.betas=[0.9, 1.0]", r"^train\.betas: expected .* each in \[0, 1\)"),
        ("PretrainConfig", "train.lr=inf", r"^train\.lr: expected a finite float, got 'inf'$"),
        ("PretrainConfig", "train.lr=.nan", r"^train\.lr: expected a finite float, got nan$"),
        ("PretrainConfig", "train.lr=-0.1", r"^train\.lr: expected float ≥ 0, got -0\.1$"),
        ("PretrainConfig", "train.eval_fraction=1", r"^train\.eval_fraction: expected float in \[0, 1\)"),
        ("PretrainConfig", "train.report_to=[tb]", r"^train\.report_to\[0\]: expected one of wandb\|mlflow"),
        ("PretrainConfig", "block_size=0", r"^block_size: expected int ≥ 2, got 0$"),
        ("PrepareConfig", "shard_size=0", r"^shard_size: expected int ≥ 1, got 0$"),
        ("PrepareConfig", "repeated_ngrams.max_top_ngram_fraction={0: 0.5}", r"_fraction: .*each key ≥ 1"),
        ("PrepareConfig", "near_dedup.threshold=1.5", r"^near_dedup\.threshold: expected float in \[0, 1\]"),
        ("GenerateConfig", "sampling.top_p=0", r"^sampling\.top_p: expected float in \(0, 1\], got 0\.0$"),
        ("ServeConfig", "port=70000", r"^port: expected int in \[0, 65535\], got 70000$"),
        ("GenerateConfig", "sampling.repetition_penalty=1e-45", r"^sampling\.repetition_penalty: expected"),
        ("SelfInstructConfig", "target=0", r"^target: expected int ≥ 1, got 0$"),
        ("SelfInstructConfig", "max_rouge=1.5", r"^max_rouge: expected float in \[0, 1\], got 1\.5$"),
        ("ContextSynthConfig", "endpoint.concurrency=0", r"^endpoint\.concurrency: expected int ≥ 1"),
    ],
)  # fmt: skip
def test_a_value_outside_its_fields_constraints_is_refused_naming_the_key(cls, override, message) -> None:
    import instructgpt.config
    import instructgpt.instruct.synth.config

    module = instructgpt.instruct.synth.config if "Synth" in cls or "Instruct" in cls else instructgpt.config
    with pytest.raises(ConfigError, match=message):
        load_config(getattr(module, cls), overrides=[override])


def test_a_bad_value_in_a_yaml_file_names_the_file_and_the_key(tmp_path) -> None:
    from instructgpt.config import PretrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("train:\n  steps: -5\n")
    with pytest.raises(ConfigError, match=r"train\.yaml: train\.steps: expected int ≥ 1, got -5$"):
        load_config(PretrainConfig, path)
    path.write_text("train:\n  stesp: 5\n")
    with pytest.raises(ConfigError, match=r"train\.yaml: train\.stesp: unknown key"):
        load_config(PretrainConfig, path)
    path.write_text("objective: gpt\n")
    with pytest.raises(ConfigError, match=r"train\.yaml: objective: expected one of clm\|mlm"):
        load_config(PretrainConfig, path)
    path.write_text("train:\n  steps: 5\n")  # an override on top is checked too, and names its key
    assert load_config(PretrainConfig, path, ["train.lr=0.01"]).train.steps == 5
    with pytest.raises(ConfigError, match=r"^train\.grad_accum: expected int ≥ 1, got 0$"):
        load_config(PretrainConfig, path, ["train.grad_accum=0"])


def test_every_default_meets_its_constraints_and_help_shows_them() -> None:
    import instructgpt.config
    import instructgpt.instruct.synth.config as synth

    modules = [instructgpt.config, synth]
    classes = [c for m in modules for c in vars(m).values() if dataclasses.is_dataclass(c)]
    assert len(classes) > 20
    for cls in classes:  # a default that broke its own constraint would refuse every run
        assert from_mapping(cls, to_dict(cls())) == cls()
    types = {key: type_name for key, type_name, *_ in describe(instructgpt.config.PretrainConfig)}
    assert (
        types["train.steps"] == "int ≥ 1" and types["train.betas"] == "list[float] of length 2 each in [0, 1)"
    )
    assert types["mlm_probability"] == "float in (0, 1]"


# ------------------------------------------------------------------------------ fields that mean one thing

RETIRED_PPO_KEYS = ("batch_size", "grad_accum", "eval_every", "eval_fraction", "log_every")


def test_ppo_train_section_lists_only_what_its_loop_reads() -> None:
    from instructgpt.config import DPOConfig, LoopOptions, PPOConfig, TrainOptions

    ppo_keys = {key for key, *_ in describe(PPOConfig)}
    assert not {f"train.{key}" for key in RETIRED_PPO_KEYS} & ppo_keys
    assert {f"train.{f.name}" for f in dataclasses.fields(LoopOptions)} <= ppo_keys
    assert {"scoring_batch", "max_prompt_length", "reward_max_length"} <= ppo_keys
    # The other training stages keep every field, defaults unchanged.
    assert {f.name for f in dataclasses.fields(TrainOptions)} == {
        f.name for f in dataclasses.fields(LoopOptions)
    } | set(RETIRED_PPO_KEYS) | {"fsdp"}  # ppo has an fsdp of its own
    assert DPOConfig().train.log_every == 10 and DPOConfig().train.eval_fraction == 0.1


def test_retired_ppo_train_keys_warn_and_are_dropped(tmp_path, capsys) -> None:
    from instructgpt.config import PPOConfig

    path = tmp_path / "ppo.yaml"
    path.write_text("train:\n  steps: 7\n  log_every: 1\n  fsdp: false\n")
    config = load_config(PPOConfig, path, ["train.batch_size=4", "train.eval_every=0"])
    assert config == load_config(PPOConfig, overrides=["train.steps=7"])
    err = capsys.readouterr().err
    for key in ("log_every", "batch_size", "eval_every"):
        assert f"warning: train.{key} is deprecated: ppo never read it" in err
    assert "warning: train.fsdp" not in err  # a real option now: ppo shards its models with it
    assert "remove it, the next release refuses it" in err
    with pytest.raises(ConfigError, match=r"^train\.log_evry: unknown key"):
        load_config(PPOConfig, overrides=["train.log_evry=1"])
    # A recipe names the key as the recipe has it.
    from_mapping(PPOConfig, {"train": {"log_every": 5}}, "config.")
    assert "warning: config.train.log_every is deprecated" in capsys.readouterr().err


def test_beta_for_ipo_is_read_as_tau_with_a_deprecation_warning(tmp_path, capsys) -> None:
    from instructgpt.config import DPOConfig

    path = tmp_path / "ipo.yaml"
    path.write_text("loss: ipo\nbeta: 0.5\n")
    old = load_config(DPOConfig, path)
    assert (old.tau, old.beta) == (0.5, 0.5)
    assert "warning: beta with loss ipo is deprecated: set tau: 0.5 instead" in capsys.readouterr().err
    new = load_config(DPOConfig, overrides=["loss=ipo", "tau=0.5"])
    assert new.tau == 0.5 and capsys.readouterr().err == ""
    # beta for DPO or SimPO is beta, and a tau given wins: no warning either way.
    assert load_config(DPOConfig, overrides=["beta=0.5"]).tau == DPOConfig().tau
    assert load_config(DPOConfig, overrides=["loss=ipo", "beta=0.5", "tau=0.2"]).tau == 0.2
    assert capsys.readouterr().err == ""
    # An override of beta on a recipe's ipo section: the section's loss decides.
    assert load_config(DPOConfig, path, ["beta=0.3"]).tau == 0.3
    from_mapping(DPOConfig, {"loss": "ipo", "beta": 0.2}, "config.")
    assert "config.beta with loss ipo is deprecated: set config.tau: 0.2" in capsys.readouterr().err
