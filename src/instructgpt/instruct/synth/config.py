"""Configs of `instructgpt synth self-instruct` and `synth context`, and of the endpoint they may call.

Typed and documented once per field, like the stage configs in `instructgpt.config`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from instructgpt.config import Decontamination, ModelOptions, SamplingOptions
from instructgpt.config.data import record_format
from instructgpt.config.typed import above, at_least, fraction, option


@dataclasses.dataclass
class EndpointOptions:
    url: str = option(
        "",
        "Base URL of an OpenAI-compatible server (vLLM, llama.cpp server, `instructgpt serve`), e.g. "
        "http://127.0.0.1:8000/v1; when set it generates instead of the local `model`.",
    )
    model: str = option("", "Model name sent to the server; empty: the first one it lists at GET /models.")
    api_key: str = option("", "API key, sent as a Bearer token (written to reports as ***).")
    api_key_env: str = option("", "Environment variable holding the API key, read when api_key is empty.")
    concurrency: int = option(8, "Requests in flight at once.", at_least(1))
    timeout: float = option(
        120.0, "Seconds to wait for a reply before the attempt counts as failed.", above(0)
    )
    retries: int = option(
        4,
        "Further attempts after a connection error, timeout, HTTP 429 or 5xx (exponential backoff).",
        at_least(0),
    )


# How both synth stages call their generator: one definition of each field, used by both configs.


def _prompt_style() -> Any:
    return option(
        "chat", "Send prompts as a user message (chat models) or as text to continue (base models)."
    )


def _batch_size() -> Any:
    return option(8, "Local model: prompts generated together.", at_least(1))


def _cache() -> Any:
    return option(True, "Keep every answer in the cache file; a re-run asks only for the missing ones.")


def _cache_file() -> Any:
    return option("", "Cache file; empty: OUTDIR/synth_cache.jsonl.")


_BLACKLIST = [
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
    "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
    "图片", "图像", "图表", "文件", "地图", "画图", "绘制", "视频", "音频", "音乐", "流程图", "示意图",
]  # fmt: skip


@dataclasses.dataclass
class SelfInstructConfig:
    """Seed tasks in, Self-Instruct's instructions and instances out (`instructgpt synth self-instruct`)."""

    lang: Literal["en", "zh"] = option("en", "Language of the prompts, the filters and the output.")
    target: int = option(100, "Stop once this many new instructions are kept.", at_least(1))
    max_rounds: int = option(
        1000, "Stop after this many rounds even if the target is not reached.", at_least(1)
    )
    prompts_per_round: int = option(
        8, "Prompts sent together per round, each with its own examples.", at_least(1)
    )
    seed_examples: int = option(6, "Human-written seed instructions shown in each prompt.", at_least(1))
    generated_examples: int = option(
        2,
        "Instructions generated in earlier rounds shown in each prompt (fewer while there are fewer).",
        at_least(0),
    )
    new_per_prompt: int = option(
        8, "New instructions asked for per prompt, numbered after the examples.", at_least(1)
    )
    max_rouge: float = option(
        0.7, "Drop a new instruction whose ROUGE-L F with any kept one (seeds too) is ≥ this.", fraction()
    )
    min_words: int = option(3, "Drop instructions with fewer words (Chinese: jieba words).", at_least(0))
    max_words: int = option(150, "Drop instructions with more words.", at_least(1))
    blacklist: list[str] = option(
        _BLACKLIST, "Drop instructions naming these (English: whole words, any case; Chinese: substrings)."
    )
    bad_starts: list[str] = option(
        ["Write a program", "编写一个程序", "写一个程序", "编写程序"],
        "Drop instructions starting with these (any case).",
    )
    classify: Literal["ask", "heuristic"] = option(
        "ask",
        "Tell classification tasks apart by asking the generator (keyword rules when it is unclear) "
        "or by the keyword rules alone.",
    )
    instances_per_task: int = option(
        3, "Most instances (input/output pairs) kept per instruction.", at_least(1)
    )
    seed: int = option(
        0, "Seed for choosing in-context examples (generation is seeded by sampling.seed + round)."
    )
    prompt_style: Literal["chat", "completion"] = _prompt_style()
    batch_size: int = _batch_size()
    cache: bool = _cache()
    cache_file: str = _cache_file()
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=512, temperature=0.7, top_p=0.5), "")
    instance_sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=384, temperature=0.0), "")
    model: ModelOptions = option(ModelOptions(name=""), "")
    endpoint: EndpointOptions = option(EndpointOptions(), "")
    decontaminate: Decontamination = option(Decontamination(), "")


@dataclasses.dataclass
class ContextSynthConfig:
    """Documents in, instruction–response pairs grounded in them out (`instructgpt synth context`)."""

    format: str = record_format()
    pairs_per_document: int = option(3, "Pairs asked for, and kept at most, per document (M).", at_least(1))
    max_document_chars: int = option(
        4000, "Longer documents are cut to this many characters in the prompt.", at_least(1)
    )
    min_grounding: float = option(
        0.6,
        "Drop a pair unless this fraction of its answer's units (a word, or a Chinese character) "
        "occurs in the document.",
        fraction(),
    )
    min_question_units: int = option(
        3, "Drop pairs whose question is shorter (units: words or characters).", at_least(0)
    )
    max_question_units: int = option(120, "Drop pairs whose question is longer.", at_least(1))
    min_answer_units: int = option(1, "Drop pairs whose answer is shorter.", at_least(0))
    max_answer_units: int = option(400, "Drop pairs whose answer is longer.", at_least(1))
    include_document: bool = option(
        False, "Put the document before the question in the user turn (for SFT; `corpus` adds it itself)."
    )
    documents_per_batch: int = option(64, "Documents whose prompts are sent together.", at_least(1))
    text_unit: Literal["block", "line", "file"] = option(
        "block", "Plain-text input: one document per block, line or file."
    )
    prompt_style: Literal["chat", "completion"] = _prompt_style()
    batch_size: int = _batch_size()
    cache: bool = _cache()
    cache_file: str = _cache_file()
    sampling: SamplingOptions = option(SamplingOptions(max_new_tokens=512, temperature=0.0), "")
    model: ModelOptions = option(ModelOptions(name=""), "")
    endpoint: EndpointOptions = option(EndpointOptions(), "")
    decontaminate: Decontamination = option(Decontamination(), "")
