"""Configs of the stages that run a trained model: `generate`, `chat`, `serve` and `eval` (with its win
rates).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from instructgpt.config.common import ModelOptions, SamplingOptions
from instructgpt.config.data import record_format
from instructgpt.config.typed import above, at_least, between, option


@dataclasses.dataclass
class GenerateConfig:
    """Prompts or Conversations in, model responses out (`instructgpt generate`)."""

    format: str = record_format()
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
    batch_size: int = option(
        0, "Answers the reward model scores per forward pass; 0: the eval's batch_size.", at_least(0)
    )
    max_length: int = option(
        0,
        "Most tokens of prompt + answer the reward model reads (a longer one keeps its end); 0: the eval's "
        "max_length.",
        at_least(0),
    )


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
    batch_size: int = option(
        8,
        "Prompts generated together, and sequences per likelihood pass (option ranking, reference NLL).",
        at_least(1),
    )
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
    threads: int = option(
        0,
        "torch CPU threads (0: OMP_NUM_THREADS when set, else the cores this process may use: its CPU "
        "affinity and cgroup quota). Warns at the start when other jobs already keep the cores busy.",
        at_least(0),
    )
    win_rate: WinRateOptions = option(WinRateOptions(), "")
