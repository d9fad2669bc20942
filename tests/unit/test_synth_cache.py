"""The response cache: asked once per distinct request, survives a kill mid-batch, keyed by what matters."""

from __future__ import annotations

import json

import pytest

from instructgpt.config import SamplingOptions
from instructgpt.instruct.synth.backends import Completion, GenRequest
from instructgpt.instruct.synth.cache import CachedGenerator, request_key
from instructgpt.records import Message


class Echo:
    """Answers each prompt with itself reversed; records every batch it is sent; dies when told to."""

    def __init__(self, identity: str = "fake:echo", die_after: int | None = None) -> None:
        self.identity, self.die_after = identity, die_after
        self.batches: list[list[str]] = []

    @property
    def calls(self) -> int:
        return sum(map(len, self.batches))

    def complete(self, requests, on_result=None):
        self.batches.append([])
        out = []
        for i, request in enumerate(requests):
            if self.die_after is not None and self.calls >= self.die_after:
                raise RuntimeError("killed")
            self.batches[-1].append(request.prompt)
            out.append(Completion(request.prompt[::-1], "length" if "long" in request.prompt else "stop"))
            if on_result is not None:
                on_result(i, out[-1])
        return out


def ask(*prompts: str, **sampling) -> list[GenRequest]:
    return [GenRequest(SamplingOptions(**sampling), prompt=p) for p in prompts]


def test_each_distinct_request_is_asked_once(tmp_path):
    inner = Echo()
    cache = CachedGenerator(inner, tmp_path / "cache.jsonl")
    seen = []
    out = cache.complete(ask("ab", "cd", "ab"), lambda i, c: seen.append((i, c.text)))
    assert [c.text for c in out] == ["ba", "dc", "ba"]
    assert inner.batches == [["ab", "cd"]] and sorted(seen) == [(0, "ba"), (1, "dc"), (2, "ba")]
    out = cache.complete(ask("cd", "ef long"))
    assert inner.batches[-1] == ["ef long"] and out[1] == Completion("gnol fe", "length")
    assert cache.stats() == {"requests": 5, "backend_calls": 3, "cache_hits": 2, "cache_damaged_lines": 0}


def test_a_new_process_reads_the_answers_back(tmp_path):
    CachedGenerator(Echo(), tmp_path / "cache.jsonl").complete(ask("ab", "cd long"))
    inner = Echo()
    out = CachedGenerator(inner, tmp_path / "cache.jsonl").complete(ask("cd long", "ab"))
    assert inner.calls == 0 and out == [Completion("gnol dc", "length"), Completion("ba")]


def test_answers_before_a_kill_mid_batch_are_kept(tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        CachedGenerator(Echo(die_after=2), tmp_path / "cache.jsonl").complete(ask("a1", "a2", "a3", "a4"))
    inner = Echo()
    out = CachedGenerator(inner, tmp_path / "cache.jsonl").complete(ask("a1", "a2", "a3", "a4"))
    assert inner.batches == [["a3", "a4"]] and [c.text for c in out] == ["1a", "2a", "3a", "4a"]


def test_a_line_cut_by_a_kill_is_skipped_and_writing_resumes_on_a_new_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    CachedGenerator(Echo(), path).complete(ask("ab"))
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "abc", "text": "half a li')  # what a kill in the middle of a write leaves
    inner = Echo()
    cache = CachedGenerator(inner, path)
    assert cache.damaged_lines == 1
    cache.complete(ask("ab", "xy"))
    assert inner.calls == 1
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[-1])["text"] == "yx" and len(lines) == 3
    assert CachedGenerator(Echo(), path).damaged_lines == 1


def test_key_covers_backend_request_and_sampling():
    chat = GenRequest(SamplingOptions(), messages=[Message("user", "ab")])
    keys = {
        request_key("a", ask("ab")[0]),
        request_key("b", ask("ab")[0]),
        request_key("a", ask("ab", temperature=0.5)[0]),
        request_key("a", ask("ab", seed=1)[0]),
        request_key("a", chat),
    }
    assert len(keys) == 5
    assert request_key("a", ask("ab")[0]) == request_key("a", ask("ab")[0])


def test_without_a_path_nothing_is_stored_but_repeats_are_counted(tmp_path):
    inner = Echo()
    cache = CachedGenerator(inner, None)
    cache.complete(ask("ab", "ab"))
    cache.complete(ask("ab"))
    assert inner.calls == 1 and cache.hits == 2 and not list(tmp_path.iterdir())


def test_a_request_needs_messages_or_a_prompt():
    with pytest.raises(ValueError, match="either messages or a prompt"):
        GenRequest(SamplingOptions())
    with pytest.raises(ValueError, match="either messages or a prompt"):
        GenRequest(SamplingOptions(), messages=[Message("user", "a")], prompt="b")
