"""lm_rows: documents cut into causal rows overlapping by one, and those rows as inputs and shifted labels,
against rows worked out by hand."""

from __future__ import annotations

import torch

from instructgpt.lm_rows import ROW_PAD, causal_inputs, causal_rows


def test_causal_rows_overlap_by_one_and_pad_the_last() -> None:
    rows = causal_rows([[1, 2, 3], [4, 5, 6, 7]], block_size=3)  # stream 1..7: 6 targets, 2 rows
    assert rows.tolist() == [[1, 2, 3, 4], [4, 5, 6, 7]]
    rows = causal_rows([[1, 2, 3, 4, 5]], block_size=3)  # 4 targets: a second row with one
    assert rows.tolist() == [[1, 2, 3, 4], [4, 5, ROW_PAD, ROW_PAD]]


def test_causal_rows_of_fewer_than_two_tokens_are_none() -> None:
    assert causal_rows([[7]], block_size=4).shape == (0, 5)
    assert causal_rows([], block_size=4).shape == (0, 5)


def test_causal_inputs_shift_and_mark_the_padding() -> None:
    rows = torch.tensor([[1, 2, 3, 4], [4, 5, ROW_PAD, ROW_PAD]])
    inputs, labels = causal_inputs(rows, pad_id=0)
    assert inputs.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert labels.tolist() == [[2, 3, 4], [5, -100, -100]]
