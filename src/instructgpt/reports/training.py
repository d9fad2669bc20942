"""The reports of the training stages: pretrain, sft, finetune-task, reward, ppo and dpo.

Each field is a key of the stage's report file, in the file's order. The entries every training run
words alike (steps, tokens_seen, final_loss, eval_start, ...: `train.run.RUN_FACTS`) sit where each
stage puts them, so they are declared per report rather than in a base class (whose fields would come
first). `plot` (and DPO's `accuracy_plot`) is written by the main process only: OPTIONAL. Besides its
`summary()`, each report gives the run report its key numbers (`facts()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from instructgpt.reports import OPTIONAL, StageReport, saved_as


@dataclass(frozen=True)
class TrainingStageReport(StageReport):
    """The base of a training stage's report: the key numbers the run report's training section shows."""

    FILE: ClassVar[str] = "train_report.json"
    FACTS: ClassVar[tuple[str, ...]]  # the fields that are its key numbers, in the run report's order

    def facts(self) -> dict[str, Any]:
        """The run report's key numbers of this run (FACTS), by field name."""
        return {name: getattr(self, name) for name in self.FACTS}


def _losses(final: float | None, start: dict[str, Any] | None, last: float | None, best: str = "") -> str:
    """The losses as pretrain and sft say them: final, and eval from its start (`best`: after it)."""
    losses = [f"final loss {final:.4f}"] if final is not None else []
    if last is not None:
        before = f"{start['eval_loss']:.4f} → " if start else ""
        losses.append(f"eval loss {before}{last:.4f}{best}")
    return ", ".join(losses)


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _kind(lora: bool, world_size: int, sharded: bool) -> str:
    """The kind of run: LoRA or full, and the processes (FSDP or not) when more than one."""
    if world_size == 1:
        return "LoRA" if lora else "full"
    return f"{_kind(lora, 1, sharded)}, {world_size} processes" + (", FSDP" if sharded else "")


def _or_none(plot: str | None) -> str:
    return "none" if plot is None else plot


def _ties(pairs: int, comparisons: int) -> str:
    """What ties=drop left out, said after the other drops ("" when nothing)."""
    if not pairs and not comparisons:
        return ""
    return f"; {pairs} tied pairs and {comparisons} all-tied comparisons left out"


def _folder(outputs: dict[str, str]) -> Path:
    """The run's folder: where its model went."""
    return Path(outputs["model"]).parent


@dataclass(frozen=True)
class PretrainReport(TrainingStageReport):
    """`pretrain`: the objective and model, the documents and rows trained on, the run's facts, outputs."""

    FACTS = ("model", "parameters", "steps", "final_loss", "eval_loss", "best_eval_loss")
    stage: str
    objective: str  # clm or mlm
    model: str
    parameters: int
    trainable_parameters: int
    inputs: list[str]
    documents: int
    eval_documents: int
    train_rows: int
    train_tokens: int
    steps: int
    steps_this_run: int
    tokens_seen: int
    final_loss: float | None
    eval_start: dict[str, float] | None  # the held-out loss before the first step
    eval_loss: float | None
    best_eval_loss: float | None
    world_size: int
    sharded: bool
    resumed_from: str | None
    train_seconds: float
    seconds_this_run: float
    read_errors: int
    outputs: dict[str, str]
    config: dict[str, Any]
    plot: str | None = field(default=None, metadata=OPTIONAL)  # the loss curve, or why there is none

    def summary(self) -> str:
        """One paragraph: what was trained, the losses, and where the outputs are."""
        return (
            f"pretrain ({self.objective}, {self.model}, {self.parameters:,} parameters): {self.steps} steps, "
            f"{self.tokens_seen:,} tokens, {_losses(self.final_loss, self.eval_start, self.eval_loss)} → "
            f"{_folder(self.outputs)}; plot: {_or_none(self.plot)}"
        )


@dataclass(frozen=True)
class SFTReport(TrainingStageReport):
    """`sft`: the model (full or LoRA), the conversations trained on (truncated and dropped ones
    counted), the run's facts, outputs."""

    FACTS = ("model", "parameters", "steps", "final_loss", "eval_loss", "best_eval_loss")
    stage: str
    model: str
    parameters: int
    trainable_parameters: int
    lora: bool
    inputs: list[str]
    examples: int
    eval_examples: int
    truncated: int
    dropped: int
    train_rows: int
    target_tokens: int
    steps: int
    steps_this_run: int
    tokens_seen: int
    final_loss: float | None
    eval_start: dict[str, float] | None
    eval_loss: float | None
    best_eval_loss: float | None
    world_size: int
    sharded: bool
    resumed_from: str | None
    train_seconds: float
    seconds_this_run: float
    read_errors: int
    outputs: dict[str, str]
    config: dict[str, Any]
    plot: str | None = field(default=None, metadata=OPTIONAL)
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file
    stripped_end_markers: int = 0  # answers whose trailing <|endoftext|>, </s>, ... were cut off on read

    def summary(self) -> str:
        """One paragraph: what was trained, the losses, and where the outputs are."""
        best = f" (best {self.best_eval_loss:.4f})" if self.eval_loss is not None else ""
        kind = _kind(self.lora, self.world_size, self.sharded)
        return (
            f"sft ({kind}, {self.model}, {self.trainable_parameters:,} trainable parameters): "
            f"{self.examples} examples ({self.truncated} truncated, {self.dropped} dropped), "
            f"{self.steps} steps, {self.tokens_seen:,} tokens, "
            f"{_losses(self.final_loss, self.eval_start, self.eval_loss, best)} → "
            f"{_folder(self.outputs)}; plot: {_or_none(self.plot)}"
        )


@dataclass(frozen=True)
class FinetuneTaskReport(TrainingStageReport):
    """`finetune-task`: the task and head, the examples (`examples`: read, used, per split), the model
    (`model`: name, parameters, trainable, window), the run (`train`), the held-out scores before and
    after (`evaluation`, saved as `eval`: scores, loss, per language), the features and rejects."""

    FILE: ClassVar[str] = "finetune_report.json"
    FACTS = ("model",)
    task: str
    head: str
    labels: list[str]
    inputs: list[str]
    examples: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]  # steps, resumed_at, final_loss, tokens_seen, seconds
    eval_start: dict[str, float] | None
    evaluation: dict[str, Any] = field(metadata=saved_as("eval"))
    outputs: dict[str, str]
    config: dict[str, Any]
    features: dict[str, dict[str, int]]
    rejects: dict[str, int]
    seconds: float

    def summary(self) -> str:
        """The scores on the held-out examples (overall, per language, and before training)."""
        overall = {k: v for k, v in self.evaluation.items() if isinstance(v, float) and k != "loss"}
        by_lang = "; ".join(f"{lang}: {_scores(s)}" for lang, s in self.evaluation["by_lang"].items())
        start = {k: v for k, v in (self.eval_start or {}).items() if k != "loss"}
        before = f"; before training: {_scores(start)}" if start else ""
        return (
            f"finetune-task ({self.task}, {self.head} head on {self.model['name']}): "
            f"{self.train['steps']} steps; held out: {_scores(overall)} ({by_lang}){before}"
        )


def _scores(scores: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())


@dataclass(frozen=True)
class RewardReport(TrainingStageReport):
    """`reward`: the comparisons and pairs trained and held out, the run's facts, the held-out pairwise
    accuracy (`eval_accuracy`: the best), the normalising bias, outputs."""

    FACTS = ("model", "parameters", "steps", "final_loss", "eval_loss", "eval_accuracy")
    inputs: list[str]
    model: str
    lora: bool
    parameters: int
    trainable_parameters: int
    comparisons: int
    eval_comparisons: int
    eval_pairs: int
    train_pairs: int
    dropped: int
    steps: int
    steps_this_run: int
    final_loss: float | None
    eval_start: dict[str, float] | None
    eval_loss: float | None
    eval_accuracy: float | None
    reward_bias: float
    world_size: int
    sharded: bool
    resumed_from: str | None
    train_seconds: float
    seconds_this_run: float
    outputs: dict[str, str]
    config: dict[str, Any]
    read_errors: int
    plot: str | None = field(default=None, metadata=OPTIONAL)
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file
    tied_pairs_dropped: int = 0  # pairs a ranking ties, left out of the loss (ties=drop), all-tied ones too
    all_tied_comparisons: int = 0  # comparisons left out: every response tied, no pair (ties=drop)

    def summary(self) -> str:
        """One paragraph: what was trained, loss and held-out accuracy, the bias, and where it all is."""
        accuracy, start = self.eval_accuracy, self.eval_start
        held = f", held-out pairwise accuracy {accuracy:.3f}" if accuracy is not None else ""
        held += f" ({start['eval_accuracy']:.3f} before training)" if start else ""
        ties = _ties(self.tied_pairs_dropped, self.all_tied_comparisons)
        return (
            f"reward ({'LoRA' if self.lora else 'full'}, {self.model}): {self.comparisons} comparisons "
            f"({self.dropped} dropped as too long{ties}), "
            f"{self.train_pairs} training pairs, {self.steps} steps, "
            f"final loss {self.final_loss:.4f}{held}; reward bias {self.reward_bias:+.4f} → "
            f"{_folder(self.outputs)}"
        )


@dataclass(frozen=True)
class PPOReport(TrainingStageReport):
    """`ppo`: the policy and reward model, the prompts, iterations and rollouts, the last iteration's
    mean score and KL, the KL coefficient reached, the seconds per phase (`seconds`), outputs."""

    FACTS = ("model", "parameters", "iterations", "final_score", "final_kl")
    stage: str
    model: str
    reward_model: str | None  # None: a reward function
    parameters: int
    trainable_parameters: int
    lora: bool
    inputs: list[str]
    prompt_records: int
    prompts: int
    too_long: int
    iterations: int
    iterations_this_run: int
    rollouts: int
    tokens_seen: int
    final_score: float | None
    final_kl: float | None
    final_kl_per_token: float | None
    kl_coef: float
    seconds: dict[str, float]  # generation_s, scoring_s, update_s (and the rest of rollout.TIMINGS)
    world_size: int
    resumed_from: str | None
    train_seconds: float
    outputs: dict[str, str]
    config: dict[str, Any]
    seconds_this_run: float
    plot: str | None = field(default=None, metadata=OPTIONAL)  # the reward curve
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file

    def summary(self) -> str:
        """One paragraph: what was trained, the reward and KL, the time, and the outputs."""
        kind = _kind(self.lora, self.world_size, sharded=False)
        seconds = self.seconds
        return (
            f"ppo ({kind}, {self.model}, {self.trainable_parameters:,} trainable parameters with the value "
            f"model): {self.iterations} iterations, {self.rollouts:,} rollouts on {self.prompts} prompts "
            f"({self.too_long} too long); final mean score {_number(self.final_score, '.4f')}, KL "
            f"{_number(self.final_kl, '.3f')} nats per answer, β {self.kl_coef:.4g}; seconds in generation "
            f"{seconds['generation_s']:.1f}, scoring {seconds['scoring_s']:.1f}, update "
            f"{seconds['update_s']:.1f} → {_folder(self.outputs)}; plot: {_or_none(self.plot)}"
        )


@dataclass(frozen=True)
class DPOReport(TrainingStageReport):
    """`dpo` (and IPO, SimPO: `loss`): the policy and reference, the comparisons and pairs, the run's
    facts, the train means of the last steps and the last eval's (reward accuracy, margin, rewards),
    where the reference log-probs came from, outputs."""

    FACTS = ("model", "parameters", "steps", "final_loss", "eval_loss", "best_eval_loss",
             "eval_reward_accuracy")  # fmt: skip
    stage: str
    loss: str  # dpo, ipo or simpo
    beta: float
    tau: float  # IPO's τ (the loss reads it instead of beta)
    model: str
    reference: str
    parameters: int
    trainable_parameters: int
    lora: bool
    inputs: list[str]
    comparisons: int
    eval_comparisons: int
    pairs: int
    eval_pairs: int
    dropped: int
    steps: int
    tokens_seen: int
    final_loss: float | None
    eval_start: dict[str, float] | None
    eval_loss: float | None
    best_eval_loss: float | None
    train_reward_accuracy: float | None
    train_margin: float | None
    train_chosen_reward: float | None
    train_rejected_reward: float | None
    eval_reward_accuracy: float | None
    eval_margin: float | None
    world_size: int
    sharded: bool
    train_seconds: float
    read_errors: int
    render_errors: int
    outputs: dict[str, str]
    config: dict[str, Any]
    reference_logps: str  # computed, or read from the cache
    steps_this_run: int
    resumed_from: str | None
    seconds_this_run: float
    plot: str | None = field(default=None, metadata=OPTIONAL)
    accuracy_plot: str | None = field(default=None, metadata=OPTIONAL)
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file
    tied_pairs_dropped: int = 0  # pairs a ranking ties, not expanded (ties=drop), all-tied ones too
    all_tied_comparisons: int = 0  # comparisons with every response tied: no pair (ties=drop)

    def summary(self) -> str:
        """One paragraph: what was trained on what, the losses and rewards, where it went."""
        kind = _kind(self.lora, self.world_size, self.sharded)
        coefficient = f"τ {self.tau:g}" if self.loss == "ipo" else f"β {self.beta:g}"
        return (
            f"{self.loss} ({coefficient}, {kind}, {self.model}, {self.trainable_parameters:,} trainable "
            f"parameters): {self.comparisons + self.eval_comparisons} comparisons → {self.pairs} training "
            f"and {self.eval_pairs} eval pairs ({self.dropped} dropped as too long"
            f"{_ties(self.tied_pairs_dropped, self.all_tied_comparisons)}), {self.steps} steps, "
            f"{self.tokens_seen:,} tokens; final loss {_number(self.final_loss, '.4f')}, reward accuracy "
            f"{_number(self.train_reward_accuracy, '.2f')}, margin {_number(self.train_margin, '.3f')}"
            f"{self._evaluation()}; reference log-probs: {self.reference_logps} → {_folder(self.outputs)}; "
            f"plots: {_or_none(self.plot)}, {_or_none(self.accuracy_plot)}"
        )

    def _evaluation(self) -> str:
        if not self.eval_pairs:
            return ""
        start = f"{self.eval_start['eval_loss']:.4f} → " if self.eval_start else ""
        return (
            f"; eval loss {start}{_number(self.eval_loss, '.4f')} (best "
            f"{_number(self.best_eval_loss, '.4f')}), reward accuracy "
            f"{_number(self.eval_reward_accuracy, '.2f')}, margin {_number(self.eval_margin, '.3f')}"
        )
