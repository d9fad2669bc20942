"""Ties in rankings: a Comparison's `tiers` (its own, or `meta.tiers` as `instructgpt annotate` writes
them) read and checked, and the tied pairs left out of the K-wise loss, the pairwise accuracy and DPO's
pair expansion."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from instructgpt.io import DataError, Rejects, read_typed
from instructgpt.losses import pairwise_accuracy, ranking_loss
from instructgpt.records import Comparison, FieldError, comparison_from, make_comparison, to_dict
from instructgpt.train.dpo_data import ranked_pairs

PROMPT = [{"role": "user", "content": "Which is best?"}]


def raw(ranking: list[int], **extra: object) -> dict:
    responses = [f"answer {i}" for i in range(len(ranking))]
    return {"id": "c", "prompt": PROMPT, "responses": responses, "ranking": ranking, **extra}


def softplus(x: float) -> float:
    """−log σ(−x): the loss of a pair whose score gap is −x."""
    return math.log1p(math.exp(x))


# ----------------------------------------------------------------------------------------------- records


def test_meta_tiers_become_the_records_tiers_in_ranking_order() -> None:
    record = comparison_from(raw([2, 0, 3, 1], meta={"tiers": [[2], [3, 0], [1]], "annotator": "a"}), "f:1")
    assert record.tiers == [[2], [0, 3], [1]]  # each tier in ranking order, whatever order it was given in
    assert record.rank_tiers() == [0, 1, 1, 2]
    assert to_dict(record)["tiers"] == [[2], [0, 3], [1]]
    assert comparison_from(to_dict(record), "f:1") == record  # the written record reads back the same


def test_a_strict_ranking_has_no_tiers_and_writes_none() -> None:
    plain = comparison_from(raw([1, 0, 2]), "f:1")
    singletons = comparison_from(raw([1, 0, 2], tiers=[[1], [0], [2]]), "f:1")
    assert plain.tiers is None and singletons == plain
    assert plain.rank_tiers() == [0, 1, 2]
    assert "tiers" not in to_dict(plain)  # strict rankings are written as before


def test_own_tiers_and_meta_tiers_must_agree() -> None:
    same = comparison_from(raw([0, 1, 2], tiers=[[0, 1], [2]], meta={"tiers": [[1, 0], [2]]}), "f:1")
    assert same.tiers == [[0, 1], [2]]
    with pytest.raises(FieldError) as err:
        comparison_from(raw([0, 1, 2], tiers=[[0, 1], [2]], meta={"tiers": [[0], [1, 2]]}), "f:1")
    assert err.value.field == "meta.tiers"


@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        ([[1], [0, 2]], "meta.tiers"),  # not the ranking [0, 1, 2] cut into groups: 1 before 0
        ([[0, 1]], "meta.tiers"),  # response 2 missing
        ([[0], [1], [2], [0]], "meta.tiers"),  # response 0 twice
        ([[0], [], [1, 2]], "meta.tiers[1]"),
        ([[0], [True, 2]], "meta.tiers[1][0]"),
        ([[0], "12"], "meta.tiers[1]"),
        ([], "meta.tiers"),
        ("0,1,2", "meta.tiers"),
    ],
)
def test_bad_tiers_name_the_field(tiers: object, field: str) -> None:
    with pytest.raises(FieldError) as err:
        comparison_from(raw([0, 1, 2], meta={"tiers": tiers}), "f:1")
    assert err.value.field == field
    with pytest.raises(FieldError) as err:
        make_comparison(
            "c", comparison_from(raw([0, 1, 2]), "f").prompt, ["a", "b", "c"], [0, 1, 2], "", tiers
        )
    assert err.value.field == field.replace("meta.", "")


def test_bad_tiers_in_a_file_stop_at_file_and_line_or_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    rows = [raw([0, 1, 2], meta={"tiers": [[0], [1, 2]]}), raw([0, 1, 2], meta={"tiers": [[0], [2]]})]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"prefs\.jsonl:2: meta\.tiers: "):
        list(read_typed([path], Comparison, Rejects("fail")))
    rejects = Rejects("skip", tmp_path / "rejects.jsonl")
    kept = [r for _, r in read_typed([path], Comparison, rejects)]
    rejects.close()
    assert [r.tiers for r in kept] == [[[0], [1, 2]]] and rejects.counts["read_error"] == 1
    assert "meta.tiers" in (tmp_path / "rejects.jsonl").read_text()


def test_a_meta_that_is_not_an_object_is_still_ignored() -> None:
    assert comparison_from(raw([0, 1], meta="annotated by hand"), "f:1").tiers is None


# ------------------------------------------------------------------------------------------------- loss


def test_a_tied_pair_costs_nothing_and_counts_in_no_mean() -> None:
    # K = 3, tiers [[0], [1, 2]]: only the pairs (0, 1) gap 2 and (0, 2) gap 3 are preferences.
    scores = torch.tensor([[3.0, 1.0, 0.0]], requires_grad=True)
    valid, tiers = torch.ones(1, 3, dtype=torch.bool), torch.tensor([[0, 1, 1]])
    expected = (softplus(-2.0) + softplus(-3.0)) / 2  # (0.126928 + 0.048587) / 2 = 0.087758
    assert expected == pytest.approx(0.087758, abs=1e-6)
    loss = ranking_loss(scores, valid, tiers=tiers)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # The same as the two strict pairs given as two K = 2 prompts (each one pair, prompts averaged).
    two = ranking_loss(torch.tensor([[3.0, 1.0], [3.0, 0.0]]), torch.ones(2, 2, dtype=torch.bool))
    assert loss.item() == pytest.approx(two.item(), abs=1e-7)
    loss.backward()
    # Responses 1 and 2 are pushed only below response 0, never against each other.
    assert scores.grad[0, 1].item() == pytest.approx(torch.sigmoid(torch.tensor(-2.0)).item() / 2, abs=1e-6)
    assert scores.grad[0, 2].item() == pytest.approx(torch.sigmoid(torch.tensor(-3.0)).item() / 2, abs=1e-6)


def test_ties_in_a_batch_with_strict_prompts_and_padding() -> None:
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.5, 1.5, math.inf], [2.0, 2.0, 1.0]])
    valid = torch.tensor([[True, True, True], [True, True, False], [True, True, True]])
    tiers = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 0, 1]])  # prompt 2: responses 0 and 1 tied
    prompt0 = (softplus(-2.0) + softplus(-3.0) + softplus(-1.0)) / 3
    prompt2 = (softplus(-1.0) + softplus(-1.0)) / 2  # pairs (0, 2) and (1, 2), gap 1 each
    expected = (prompt0 + softplus(1.0) + prompt2) / 3
    assert ranking_loss(scores, valid, tiers=tiers).item() == pytest.approx(expected, abs=1e-6)
    # Accuracy: 3 of 3, 0 of 1, 2 of 2; the tied pair (equal scores, which would count as wrong) is out.
    correct, pairs = pairwise_accuracy(scores, valid, tiers)
    assert (correct.item(), pairs.item()) == (5, 6)
    assert tuple(t.item() for t in pairwise_accuracy(scores, valid)) == (5, 7)


def test_strict_tiers_give_the_untied_loss_bitwise() -> None:
    torch.manual_seed(0)
    scores, valid = torch.randn(5, 4), torch.tensor([[True] * 4, [True] * 3 + [False]] * 2 + [[True] * 4])
    strict = torch.arange(4).expand(5, 4)
    assert torch.equal(ranking_loss(scores, valid, 0.3, strict), ranking_loss(scores, valid, 0.3))
    assert pairwise_accuracy(scores, valid, strict) == pairwise_accuracy(scores, valid)


def test_an_all_tied_prompt_is_refused() -> None:
    with pytest.raises(ValueError, match="not all tied"):
        ranking_loss(torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool), tiers=torch.zeros(1, 2))


# ------------------------------------------------------------------------------------------------ pairs


def test_dpo_pairs_leave_out_the_tied_ones() -> None:
    record = comparison_from(raw([2, 0, 3, 1], meta={"tiers": [[2], [0, 3], [1]]}), "f:1")
    assert ranked_pairs(record.ranking, record.rank_tiers()) == [(2, 0), (2, 3), (2, 1), (0, 1), (3, 1)]
    assert ranked_pairs(record.ranking) == [(2, 0), (2, 3), (2, 1), (0, 3), (0, 1), (3, 1)]  # ties=order
    assert ranked_pairs([1, 0], [0, 0]) == []


# ------------------------------------------------------------------------------------------------- show


def test_show_gives_tied_responses_one_rank(tmp_path: Path) -> None:
    from rich.console import Console

    from instructgpt.show import show

    path = tmp_path / "tied.jsonl"
    path.write_text(json.dumps(raw([2, 0, 3, 1], meta={"tiers": [[2], [0, 3], [1]]})) + "\n")
    console = Console(record=True, width=100)
    assert show(path, console=console) == 1
    titles = [line for line in console.export_text().splitlines() if "response ranked" in line]
    ranks = [line.split("response ranked ")[1].split("─")[0].strip() for line in titles]
    assert ranks == ["1", "2 (tied)", "2 (tied)", "3"]


def test_annotate_writes_tiers_that_read_back(tmp_path: Path) -> None:
    from instructgpt.annotate.export import comparison_row
    from instructgpt.annotate.items import Item
    from instructgpt.annotate.labels import Label

    record = comparison_from(raw([0, 1, 2, 3]), "f")
    item = Item("i", record.prompt, record.responses, ["m"] * 4, [0, 1, 2, 3])
    row = comparison_row(item, Label("ann", "i", [[3], [2, 0], [1]], [None] * 4, [[] for _ in range(4)]))
    assert row["ranking"] == [3, 0, 2, 1] and row["tiers"] == [[3], [0, 2], [1]]
    assert row["meta"]["tiers"] == [[3], [2, 0], [1]]  # as the annotator gave them
    assert comparison_from(row, "f:1").rank_tiers() == [0, 1, 1, 2]
    strict = comparison_row(item, Label("ann", "i", [[3], [2], [0], [1]], [None] * 4, [[] for _ in range(4)]))
    assert "tiers" not in strict and comparison_from(strict, "f:1").tiers is None
