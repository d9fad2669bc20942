"""Configs of the supervised training stages: `pretrain`, `sft` and `finetune-task`."""

from __future__ import annotations

import dataclasses
from typing import Literal

from instructgpt.config.common import Decontamination, LoraOptions, ModelOptions, TrainOptions
from instructgpt.config.data import record_format
from instructgpt.config.typed import at_least, between, option


@dataclasses.dataclass
class PretrainConfig:
    """Text in, a pretrained (or further pretrained) model out (`instructgpt pretrain`)."""

    format: str = record_format()
    objective: Literal["clm", "mlm"] = option(
        "clm", "Causal LM (GPT family) or masked LM (BERT family, 15% masking, 80/10/10)."
    )
    mlm_probability: float = option(
        0.15, "Fraction of tokens selected for masked-LM prediction.", between(0, 1, open_low=True)
    )
    block_size: int = option(256, "Tokens per packed training block.", at_least(2))
    text_unit: Literal["block", "line", "file"] = option(
        "block", "Plain-text input: one document per block, line or file."
    )
    model: ModelOptions = option(ModelOptions(), "")
    train: TrainOptions = option(TrainOptions(), "")


@dataclasses.dataclass
class SFTConfig:
    """Conversations in, a fine-tuned model out (`instructgpt sft`)."""

    train_on: Literal["assistant", "all"] = option(
        "assistant", "Loss on assistant turns only, or on every token."
    )
    packing: bool = option(True, "Pack several conversations per row; each still attends only to itself.")
    truncate: Literal["drop", "truncate", "error"] = option(
        "truncate",
        "A conversation longer than model.max_length: cut it (counted), drop it (counted), or stop.",
    )
    model: ModelOptions = option(ModelOptions(), "")
    lora: LoraOptions = option(LoraOptions(), "")
    train: TrainOptions = option(TrainOptions(), "")
    decontaminate: Decontamination = option(Decontamination(), "")


@dataclasses.dataclass
class FinetuneTaskConfig:
    """TaskExamples in, a fine-tuned encoder and its scores out (`instructgpt finetune-task`)."""

    task: Literal["auto", "sentiment_binary", "sentiment_fine", "qa_extractive"] = option(
        "auto", "Task to train; auto: the only one of these in the inputs (name it when there are several)."
    )
    layout: str = option("", "Layout of the inputs (squad, text_label, ...); empty: detect per file.")
    lang: str = option("", "Language of the inputs; empty: each example's own, else detected.")
    text_unit: Literal["block", "line", "file"] = option("line", "Plain-text input: one record per unit.")
    eval_files: list[str] = option(
        [], "Evaluation files (e.g. a SQuAD dev set); empty: hold out train.eval_fraction of the inputs."
    )
    max_length: int = option(
        384, "Tokens per window: the text, or question + context, specials included.", at_least(1)
    )
    stride: int = option(128, "QA: tokens shared by consecutive windows over a long context.", at_least(0))
    max_answer_tokens: int = option(30, "QA: longest answer predicted, in tokens.", at_least(1))
    eval_batch_size: int = option(32, "Windows per forward pass when predicting.", at_least(1))
    model: ModelOptions = option(ModelOptions(name="tiny-bert"), "")
    lora: LoraOptions = option(LoraOptions(targets=["query", "value"]), "")
    # BERT's fine-tuning recipe (AdamW 5e-5, decay 0.01, linear to 0) suits a pretrained encoder; a preset
    # trained from scratch here (model.name=tiny-bert) learns with train.lr=1e-3.
    train: TrainOptions = option(
        TrainOptions(
            steps=300, batch_size=16, lr=5e-5, weight_decay=0.01, betas=[0.9, 0.999], warmup_steps=30,
            schedule="linear", min_lr_ratio=0.0, eval_fraction=0.1, eval_every=100,
        ),
        "",
    )  # fmt: skip
