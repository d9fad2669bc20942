"""Judged win rates: how often model a's answer beats model b's answer to the same prompt.

Two judges, each giving a `Tally` of wins, losses, ties and invalid verdicts for a (a, b) pair:

- a reward model (`reward_model_scores`, `compare_scores`): both answers are scored with the RM's head
  plus its normalisation bias; a difference within `tie_margin` is a tie.
- an LLM behind an OpenAI-compatible server (`Judge`, `judge_pairs`): it sees the question and the two
  answers and replies "A", "B" or "tie". LLM judges favour a position (usually the first), so which
  model's answer is shown as A is drawn per prompt from a seeded generator (`shows_a_first`) and the
  verdict is mapped back. A reply that names no verdict is counted as invalid, never dropped.

win rate = (wins + ties / 2) / n with n = wins + losses + ties (the valid verdicts; None when there are
none), with its Wilson 95% interval (`stats.win_rate_interval`: wins + ties / 2 successes of n). The HTTP
client is plain urllib: no dependency beyond the standard library.
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from instructgpt.evaluate.stats import win_rate_interval
from instructgpt.io import Rejects, read_records
from instructgpt.records import Conversation, Message, Prompt, prompt_messages

Verdict = Literal["A", "B", "tie"]
JUDGE_MAX_TOKENS = 32  # the judge is asked for one word; a little room for "Verdict: A."
JUDGE_SYSTEM = "You are an impartial judge of how well AI assistants answer a user's request."
JUDGE_PROMPT = """Compare the two assistants' answers to the user's request below. Decide which one is \
more helpful, correct and relevant. Do not let the order of the answers or their length sway you.

[User request]
{question}

[Answer A]
{first}

[Answer B]
{second}

Reply with exactly one of: A, B, tie."""
_BRACKETED = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)  # MT-Bench's "[[A]]" style
_PLAIN = re.compile(
    r"^(?:(?:final\s+)?(?:verdict|answer|winner|decision)\s*(?:is)?\s*[:：]?\s*)?(?:answer\s+)?(A|B|tie)$",
    re.IGNORECASE,
)


class JudgeError(ValueError):
    """The judge server could not be used: unreachable after the retries, or it refused the request."""


@dataclass
class Tally:
    """One judge's verdicts on one (a, b) pair, from a's side."""

    wins: int = 0
    losses: int = 0
    ties: int = 0
    invalid: int = 0

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float | None:
        return (self.wins + self.ties / 2) / self.n if self.n else None

    def add(self, verdict: Literal["win", "loss", "tie"] | None) -> None:
        if verdict is None:
            self.invalid += 1
        else:
            field = {"win": "wins", "loss": "losses", "tie": "ties"}[verdict]
            setattr(self, field, getattr(self, field) + 1)

    def row(self, a: str, b: str, judge: str) -> dict[str, Any]:
        """The report row: {a, b, judge, wins, losses, ties, invalid, win_rate, n, ci_low, ci_high}, the
        last two the Wilson 95% interval of the win rate (None, as the rate, without a valid verdict)."""
        counts = {"wins": self.wins, "losses": self.losses, "ties": self.ties, "invalid": self.invalid}
        low, high = win_rate_interval(self.wins, self.ties, self.n) if self.n else (None, None)
        rate = {"win_rate": self.win_rate, "n": self.n, "ci_low": _round(low), "ci_high": _round(high)}
        return {"a": a, "b": b, "judge": judge, **counts, **rate}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# ------------------------------------------------------------------------------------ reward model


def compare_scores(a_scores: Sequence[float], b_scores: Sequence[float], tie_margin: float) -> Tally:
    """a wins a prompt when its reward exceeds b's by more than `tie_margin`, loses when it is lower by
    more, and ties otherwise."""
    tally = Tally()
    for a, b in zip(a_scores, b_scores, strict=True):
        diff = a - b
        tally.add("win" if diff > tie_margin else "loss" if diff < -tie_margin else "tie")
    return tally


def reward_model_scores(
    folder: str,
    prompts: Sequence[Sequence[Message]],
    answers: Mapping[str, Sequence[str]],
    batch_size: int,
    max_length: int,
    device: Any,
    dtype: Literal["float32", "bfloat16"] = "float32",
) -> dict[str, list[float]]:
    """Each model's answers scored by the reward model in `folder` (head + its `reward_bias`), on
    `device`; a sequence longer than `max_length` keeps its last tokens."""
    import torch

    from instructgpt.config import ModelOptions
    from instructgpt.models import load_model
    from instructgpt.scoring import reward_bias, reward_scores

    options = ModelOptions(name=folder, dtype=dtype)
    model, tokenizer = load_model(options, "sequence_classification", num_labels=1)
    model.to(device).eval()
    bias = reward_bias(model)
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", None) or max_length)
    out = {}
    with torch.no_grad():
        for name, texts in answers.items():
            scores = reward_scores(model, tokenizer, prompts, list(texts), batch_size, max_length, device)
            out[name] = [float(s) + bias for s in scores.float().cpu()]
    return out


# ------------------------------------------------------------------------------------ LLM judge


@dataclass(frozen=True)
class Judge:
    """An OpenAI-compatible chat-completions endpoint used as a judge."""

    url: str  # base URL, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str = ""
    timeout: float = 60.0
    retries: int = 3  # further attempts after a failed one (connection error, timeout, 429, 5xx)
    backoff: float = 1.0  # seconds before the first retry, doubled before each next one

    def complete(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The assistant text of one chat completion ("" when the reply has none)."""
        endpoint = self.url.rstrip("/") + "/chat/completions"
        body = {"model": self.model, "messages": list(messages), "temperature": 0}
        request = urllib.request.Request(
            endpoint, json.dumps({**body, "max_tokens": JUDGE_MAX_TOKENS}).encode(), self._headers()
        )
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return _reply_text(response.read())
            except urllib.error.HTTPError as err:
                if err.code != 429 and err.code < 500:
                    detail = err.read().decode("utf-8", "replace")[:300]
                    raise JudgeError(f"judge {endpoint}: HTTP {err.code}: {detail}") from err
                problem = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError) as err:  # refused, unreachable, timed out
                problem = str(getattr(err, "reason", None) or err)
        raise JudgeError(f"judge {endpoint}: no answer after {self.retries + 1} attempts ({problem})")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def _reply_text(raw: bytes) -> str:
    """choices[0].message.content of a chat-completions reply; "" when the reply is not shaped so."""
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def judge_messages(question: str, first: str, second: str) -> list[dict[str, str]]:
    """The chat sent to the judge: `first` is shown as answer A, `second` as answer B."""
    prompt = JUDGE_PROMPT.format(question=question, first=first, second=second)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}]


def parse_verdict(text: str) -> Verdict | None:
    """ "A", "B" or "tie" from a judge's reply, or None when it names no single verdict.

    Accepted: MT-Bench's "[[A]]" / "[[B]]" / "[[C]]" (C is a tie) anywhere, or a last line that is just
    the verdict, optionally as "Verdict: A", "Answer B", in bold or with a full stop. Anything else
    (prose, both letters) is None: guessing would hide a judge that does not follow the instructions.
    """
    bracketed = {m.lower() for m in _BRACKETED.findall(text)}
    if bracketed:
        return _VERDICTS[bracketed.pop()] if len(bracketed) == 1 else None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    match = _PLAIN.match(lines[-1].strip().strip("*_`'\".!。 ").strip())
    return _VERDICTS[match.group(1).lower()] if match else None


_VERDICTS: dict[str, Verdict] = {"a": "A", "b": "B", "c": "tie", "tie": "tie"}


def shows_a_first(seed: int, a: str, b: str, index: int) -> bool:
    """Whether model a's answer is shown as answer A for prompt `index` of the (a, b) pair: a fair
    seeded coin per prompt, independent of every other prompt."""
    return random.Random(f"{seed}:{a}:{b}:{index}").random() < 0.5


def outcome(verdict: Verdict | None, a_first: bool) -> Literal["win", "loss", "tie"] | None:
    """The verdict on positions mapped back to model a: "A" is a win when a was shown first."""
    if verdict is None or verdict == "tie":
        return verdict
    return "win" if (verdict == "A") == a_first else "loss"


def judge_pairs(
    judge: Judge,
    questions: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    names: tuple[str, str],
    seed: int,
    workers: int = 4,
) -> Tally:
    """The judge's tally of a's answers against b's, one request per question (`workers` at a time)."""
    a, b = names

    def one(i: int) -> Literal["win", "loss", "tie"] | None:
        a_first = shows_a_first(seed, a, b, i)
        first, second = (answers_a[i], answers_b[i]) if a_first else (answers_b[i], answers_a[i])
        reply = judge.complete(judge_messages(questions[i], first, second))
        return outcome(parse_verdict(reply), a_first)

    tally = Tally()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for result in pool.map(one, range(len(questions))):
            tally.add(result)
    return tally


# ------------------------------------------------------------------------------------ the comparison


def prompt_text(messages: Sequence[Message]) -> str:
    """A prompt as a person reads it: a lone user message as it is, else `role: content` blocks."""
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    return "\n\n".join(f"{m.role}: {m.content}" for m in messages)


def choose_prompts(
    eval_prompts: Sequence[list[Message]], files: Sequence[str], max_prompts: int, seed: int, rejects: Rejects
) -> tuple[list[list[Message]], list[int] | None]:
    """The prompts the models are compared on, at most `max_prompts` (a seeded sample): those of `files`
    (Prompts or Conversations) with index None, else eval prompts with their indices in `eval_prompts`.
    `max_prompts` 0 chooses none."""
    if max_prompts <= 0:
        return [], []
    rng = random.Random(f"{seed}:win_rate")
    if not files:
        index = list(range(len(eval_prompts)))
        index = sorted(rng.sample(index, max_prompts)) if len(index) > max_prompts else index
        return [eval_prompts[i] for i in index], index
    prompts = [
        p for _, r in read_records(files, (Prompt, Conversation), rejects) if (p := prompt_messages(r))
    ]
    if not prompts:
        raise ValueError(f"win_rate.prompts: no prompts in {', '.join(files)}")
    if len(prompts) > max_prompts:
        prompts = [prompts[i] for i in sorted(rng.sample(range(len(prompts)), max_prompts))]
    return prompts, None


def win_rate_rows(
    names: Sequence[str],
    prompts: Sequence[Sequence[Message]],
    answers: Mapping[str, Sequence[str]],
    tie_margin: float,
    seed: int,
    rm_scores: Mapping[str, Sequence[float]] | None = None,
    judge: Judge | None = None,
) -> list[dict[str, Any]]:
    """Report rows of every later model against the first (names[0], the baseline): by reward-model
    scores when given, by the LLM judge when given."""
    base, rows = names[0], []
    for a in names[1:]:
        if rm_scores is not None:
            rows.append(
                compare_scores(rm_scores[a], rm_scores[base], tie_margin).row(a, base, "reward_model")
            )
        if judge is not None:
            questions = [prompt_text(p) for p in prompts]
            tally = judge_pairs(judge, questions, answers[a], answers[base], (a, base), seed)
            rows.append(tally.row(a, base, "llm_judge"))
    return rows


def win_rate_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """The rows as a rich Table for the terminal."""
    from rich.table import Table

    headers = ("a", "b", "judge", "wins", "losses", "ties", "invalid", "n", "win rate [95% CI]")
    table = Table(*headers, title="win rates (ties count half)", box=None)
    for row in rows:
        rate = row["win_rate"]
        cell = "–" if rate is None else f"{rate:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        table.add_row(*(str(row[k]) for k in headers[:-1]), cell)
    return table
