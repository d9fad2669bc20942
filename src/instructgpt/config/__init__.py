"""One typed config per stage: dataclasses whose fields are declared with `option(default, help)`; the
help text is the single place a field is documented (`instructgpt STAGE --help` prints it).

The package's modules own: `typed` the machinery (reading, validating and describing a config), `common`
the sections stages share (model, lora, train, sampling), `data` prepare/instruct/corpus, `training`
pretrain/sft/finetune-task, `alignment` reward/score/dpo/ppo, `inference` generate/chat/serve/eval, `demo`
demo-data. Every name is importable from `instructgpt.config` itself: stages import their config from here,
and recipes look a stage's config class up by name on this module.
"""

from __future__ import annotations

from instructgpt.config.alignment import (
    DPOConfig,
    KLOptions,
    PPOConfig,
    PPOTrainOptions,
    RewardConfig,
    RewardNormalizeOptions,
    ScoreConfig,
)
from instructgpt.config.annotate import AnnotateConfig
from instructgpt.config.common import (
    Decontamination,
    LoopOptions,
    LoraOptions,
    ModelOptions,
    SamplingOptions,
    TrainOptions,
)
from instructgpt.config.data import (
    CorpusConfig,
    DecontamConfig,
    ExactDedup,
    HeldoutOptions,
    InstructConfig,
    LangFilter,
    LengthFilter,
    NearDedup,
    NormalizeOptions,
    PiiOptions,
    PrefixDedup,
    PrepareConfig,
    RepeatedLinesFilter,
    RepeatedNgramsFilter,
    SegmentOptions,
    SymbolsFilter,
)
from instructgpt.config.demo import (
    DemoClaimsConfig,
    DemoDataConfig,
)
from instructgpt.config.export import ExportConfig
from instructgpt.config.inference import (
    ChatConfig,
    EvalConfig,
    GenerateConfig,
    ServeConfig,
    WinRateOptions,
)
from instructgpt.config.training import (
    FinetuneTaskConfig,
    PretrainConfig,
    SFTConfig,
)
from instructgpt.config.typed import (
    ConfigError,
    above,
    at_least,
    between,
    deprecated,
    describe,
    each,
    each_key,
    fraction,
    from_mapping,
    length,
    load_config,
    option,
    split_override,
    to_dict,
)

__all__ = [
    "AnnotateConfig",
    "ChatConfig",
    "ConfigError",
    "CorpusConfig",
    "DPOConfig",
    "DecontamConfig",
    "Decontamination",
    "DemoClaimsConfig",
    "DemoDataConfig",
    "EvalConfig",
    "ExactDedup",
    "ExportConfig",
    "FinetuneTaskConfig",
    "GenerateConfig",
    "HeldoutOptions",
    "InstructConfig",
    "KLOptions",
    "LangFilter",
    "LengthFilter",
    "LoopOptions",
    "LoraOptions",
    "ModelOptions",
    "NearDedup",
    "NormalizeOptions",
    "PPOConfig",
    "PPOTrainOptions",
    "PiiOptions",
    "PrefixDedup",
    "PrepareConfig",
    "PretrainConfig",
    "RepeatedLinesFilter",
    "RepeatedNgramsFilter",
    "RewardConfig",
    "RewardNormalizeOptions",
    "SFTConfig",
    "SamplingOptions",
    "ScoreConfig",
    "SegmentOptions",
    "ServeConfig",
    "SymbolsFilter",
    "TrainOptions",
    "WinRateOptions",
    "above",
    "at_least",
    "between",
    "deprecated",
    "describe",
    "each",
    "each_key",
    "fraction",
    "from_mapping",
    "length",
    "load_config",
    "option",
    "split_override",
    "to_dict",
]
