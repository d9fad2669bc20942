"""winrate: the arithmetic by hand, verdict parsing, and the LLM-judge client against a local stub server
(retries on 5xx, invalid verdicts counted, the A/B order drawn per prompt and mapped back)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from instructgpt.evaluate.winrate import (
    Judge,
    JudgeError,
    Tally,
    compare_scores,
    judge_pairs,
    outcome,
    parse_verdict,
    shows_a_first,
    win_rate_rows,
)
from instructgpt.records import Message

Reply = tuple[int, str]  # (HTTP status, assistant text or raw body)


class Stub:
    """A chat-completions server on 127.0.0.1: `answer(request_json)` gives each reply."""

    def __init__(self, answer: Callable[[dict[str, Any]], Reply]) -> None:
        self.answer, self.requests, self.headers = answer, [], []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, **body})
                stub.headers.append(dict(self.headers))
                status, text = stub.answer(body)
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})
                data = (payload if status == 200 and not text.startswith("RAW:") else text[4:]).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def judge(self, **kwargs: Any) -> Judge:
        return Judge(self.url, "judge-model", backoff=0.0, timeout=5.0, **kwargs)


@pytest.fixture
def serve(monkeypatch) -> Iterator[Callable[[Callable[[dict[str, Any]], Reply]], Stub]]:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    started: list[Stub] = []

    def start(answer: Callable[[dict[str, Any]], Reply]) -> Stub:
        stub = Stub(answer)
        threading.Thread(target=stub.server.serve_forever, args=(0.05,), daemon=True).start()
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.server.shutdown()
        stub.server.server_close()


def shown(request: dict[str, Any]) -> tuple[str, str]:
    """The answers the judge was shown as A and B."""
    text = request["messages"][-1]["content"]
    first = text.split("[Answer A]\n", 1)[1].split("\n\n[Answer B]", 1)[0]
    second = text.split("[Answer B]\n", 1)[1].split("\n\nReply with", 1)[0]
    return first, second


# ------------------------------------------------------------------------------------------ arithmetic


def test_win_rate_counts_ties_as_half_and_leaves_invalid_out():
    tally = Tally(wins=12, losses=5, ties=3, invalid=2)
    assert tally.n == 20 and tally.win_rate == pytest.approx((12 + 1.5) / 20) == pytest.approx(0.675)
    row = tally.row("B", "A", "reward_model")
    interval = {"ci_low": pytest.approx(0.4567, abs=1e-4), "ci_high": pytest.approx(0.8369, abs=1e-4)}
    assert row == {"a": "B", "b": "A", "judge": "reward_model", "wins": 12, "losses": 5, "ties": 3,
                   "invalid": 2, "win_rate": 0.675, "n": 20, **interval}  # fmt: skip
    # Wilson of 13.5 successes (ties count half) of 20, z = 1.96: z²/n = 0.19208, centre =
    # (0.675 + 0.09604) / 1.19208 = 0.646802, half width = 1.96 / 1.19208 * sqrt(0.675 * 0.325 / 20 +
    # 3.8416 / 1600) = 1.644185 * 0.115628 = 0.190114 → (0.4567, 0.8369)
    empty = Tally(invalid=4).row("x", "y", "j")
    assert (
        Tally(invalid=4).win_rate is None and empty["n"] == 0 and empty["ci_low"] is empty["ci_high"] is None
    )


def test_reward_scores_compare_with_a_tie_margin():
    a = [1.0, 0.5, 0.0, 2.0, -1.0]
    b = [0.0, 0.45, 0.0, 1.0, 1.0]
    assert compare_scores(a, b, 0.0) == Tally(wins=3, losses=1, ties=1)
    # within 0.1: 0.05 apart and equal are ties; 1.0 apart is not
    assert compare_scores(a, b, 0.1) == Tally(wins=2, losses=1, ties=2)
    rows = win_rate_rows(["base", "x"], [[]] * 5, {}, 0.1, 0, rm_scores={"base": b, "x": a})
    assert rows == [compare_scores(a, b, 0.1).row("x", "base", "reward_model")]
    assert rows[0]["win_rate"] == pytest.approx((2 + 1) / 5)


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("A", "A"), ("b", "B"), ("Tie", "tie"), ("TIE.", "tie"), ("**A**", "A"), ("Answer B.", "B"),
     ("Verdict: A", "A"), ("Final verdict: tie", "tie"), ("Both are fine.\n\nB", "B"),
     ("Explanation ... [[B]]", "B"), ("[[C]]", "tie"), ("[[A]] or maybe [[B]]", None),
     ("I think A is better than B", None), ("", None), ("A or B", None), ("none", None)],
)  # fmt: skip
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_outcome_maps_positions_back_to_model_a():
    assert outcome("A", a_first=True) == "win" and outcome("A", a_first=False) == "loss"
    assert outcome("B", a_first=True) == "loss" and outcome("B", a_first=False) == "win"
    assert outcome("tie", True) == "tie" and outcome(None, False) is None


def test_order_is_a_seeded_coin_per_prompt():
    firsts = [shows_a_first(0, "x", "y", i) for i in range(200)]
    assert 70 < sum(firsts) < 130  # both orders, about half each
    assert firsts == [shows_a_first(0, "x", "y", i) for i in range(200)]  # reproducible
    assert firsts != [shows_a_first(1, "x", "y", i) for i in range(200)]  # and seeded


# ------------------------------------------------------------------------------------------ the client


def test_client_retries_a_server_error_then_succeeds(serve):
    replies = iter([(500, "RAW:overloaded"), (200, "A")])
    stub = serve(lambda _: next(replies))
    judge = stub.judge(api_key="sk-test")
    assert judge.complete([{"role": "user", "content": "hi"}]) == "A"
    assert len(stub.requests) == 2 and stub.requests[0]["path"] == "/v1/chat/completions"
    assert stub.requests[1]["model"] == "judge-model" and stub.requests[1]["temperature"] == 0
    assert stub.headers[1]["Authorization"] == "Bearer sk-test"


def test_client_gives_up_after_its_retries_and_does_not_retry_a_client_error(serve):
    stub = serve(lambda _: (503, "RAW:down"))
    with pytest.raises(JudgeError, match=r"no answer after 3 attempts.*HTTP 503"):
        stub.judge(retries=2).complete([{"role": "user", "content": "hi"}])
    assert len(stub.requests) == 3
    refused = serve(lambda _: (404, 'RAW:{"error": "model not found"}'))
    with pytest.raises(JudgeError, match=r"HTTP 404.*model not found"):
        refused.judge().complete([{"role": "user", "content": "hi"}])
    assert len(refused.requests) == 1
    assert "Authorization" not in refused.headers[0]  # no key, no header


def test_client_error_when_nothing_listens():
    judge = Judge("http://127.0.0.1:9/v1", "m", retries=1, backoff=0.0, timeout=2.0)
    with pytest.raises(JudgeError, match="no answer after 2 attempts"):
        judge.complete([{"role": "user", "content": "hi"}])


def test_judge_sees_both_orders_and_verdicts_map_back(serve):
    """The stub prefers the answer that says GOOD, wherever it is shown: a wins every prompt although
    it was shown first only about half of the time."""
    stub = serve(lambda request: (200, "A" if "GOOD" in shown(request)[0] else "B"))
    n = 24
    questions = [f"question {i}" for i in range(n)]
    tally = judge_pairs(stub.judge(), questions, ["GOOD answer"] * n, ["meh answer"] * n, ("x", "y"), 7)
    assert tally == Tally(wins=n)
    a_first = {r["messages"][-1]["content"].split("\n\n[Answer A]")[0].split("\n")[-1]: shown(r)[0]
               for r in stub.requests}  # fmt: skip
    expected = {
        f"question {i}": "GOOD answer" if shows_a_first(7, "x", "y", i) else "meh answer" for i in range(n)
    }
    assert a_first == expected and 0 < sum(v == "GOOD answer" for v in a_first.values()) < n


def test_position_biased_judge_scores_half_and_unparseable_verdicts_count_invalid(serve):
    always_a = serve(lambda _: (200, "A"))
    n, seed = 20, 3
    tally = judge_pairs(always_a.judge(), ["q"] * n, ["x"] * n, ["y"] * n, ("x", "y"), seed, workers=1)
    firsts = sum(shows_a_first(seed, "x", "y", i) for i in range(n))
    assert tally == Tally(wins=firsts, losses=n - firsts)  # position bias cancels out in expectation
    replies = iter(["tie", "I cannot decide.", "RAW:not json", "B", "[[A]]"])
    mixed = serve(lambda _: (200, next(replies)))
    tally = judge_pairs(mixed.judge(), ["q"] * 5, ["x"] * 5, ["y"] * 5, ("x", "y"), seed, workers=1)
    assert tally.invalid == 2 and tally.ties == 1 and tally.n == 3  # prose and a broken body: invalid
    row = tally.row("x", "y", "llm_judge")
    assert row["n"] == 3 and row["invalid"] == 2 and row["win_rate"] == pytest.approx(tally.win_rate)


def test_judge_rows_cover_every_later_model_against_the_first(serve):
    stub = serve(lambda request: (200, "A" if "GOOD" in shown(request)[0] else "B"))
    prompts = [[Message("user", f"q{i}")] for i in range(4)]
    answers = {"base": ["meh"] * 4, "good": ["GOOD"] * 4, "same": ["meh"] * 4}
    rows = win_rate_rows(list(answers), prompts, answers, 0.0, 0, judge=stub.judge())
    assert [(r["a"], r["b"], r["judge"]) for r in rows] == [
        ("good", "base", "llm_judge"),
        ("same", "base", "llm_judge"),
    ]
    assert rows[0]["wins"] == 4 and rows[0]["win_rate"] == 1.0
    assert rows[1]["wins"] + rows[1]["losses"] == 4  # no GOOD on either side: the stub says B
