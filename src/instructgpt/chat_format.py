"""THE one place where conversations and texts become token ids + a loss mask, and where they are packed.

- `render_conversation` renders a conversation with the tokenizer's own chat template and marks the
  assistant tokens as training targets by diffing the token ids of growing prefixes, so it works for any
  template, with or without `{% generation %}` markers. `render_prompt` renders the same template with the
  generation prompt for inference: training and inference see byte-identical prefixes.
- `pack` (first-fit decreasing) and `collate` build `PackedBatch`es whose `position_ids` restart at 0 for
  every example; `use_packed_attention` switches a transformers model to an attention function that splits
  each row at those restarts and runs causal SDPA on each example alone, so no example attends to another
  and no (T, T) mask is ever built.
- `show_mask` shows which tokens are trained.

Message content and plain text are text: a special token typed in them (`<|im_end|>`, `<|im_start|>`)
is encoded as ordinary text tokens, so a user cannot close a turn or open a system turn of their own;
only the chat template itself writes control tokens (transformers' `sanitize_control_tokens`, as chat
APIs do). `special_tokens_in_content=True` lets typed special tokens through as control tokens, for data
that writes them on purpose and is trusted.

Convention: `Rendered.loss_mask[i] == 1` means token i is a target (predicted from position i - 1);
`collate` shifts, so `PackedBatch.labels[b, t]` is the target of input position t.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from rich.text import Text
from torch import Tensor
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.utils.import_utils import is_torch_greater_or_equal

from instructgpt.losses import IGNORE_INDEX
from instructgpt.records import Message

PACKED_ATTENTION = "instructgpt_packed"
_SDPA_HAS_GQA = is_torch_greater_or_equal("2.5")  # `enable_gqa`: grouped kv heads without copies

# --------------------------------------------------------------------------------------------- rendering


@dataclass
class Rendered:
    """One example as token ids; `loss_mask[i] == 1` when token i is a training target."""

    input_ids: list[int]
    loss_mask: list[int]

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.loss_mask):
            raise ValueError(f"{len(self.input_ids)} input ids but {len(self.loss_mask)} mask values")

    def __len__(self) -> int:
        return len(self.input_ids)


def _as_dicts(messages: Sequence[Message | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(m) if isinstance(m, Mapping) else {"role": m.role, "content": m.content} for m in messages]


def _chat_ids(
    tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool, special_in_content: bool
) -> list[int]:
    if not special_in_content and not _can_sanitize(type(tokenizer)):
        raise ValueError(
            "this transformers version cannot encode special tokens typed in messages as text "
            "(apply_chat_template has no sanitize_control_tokens, transformers >= 5.20); upgrade it"
        )
    options = {} if special_in_content else {"sanitize_control_tokens": True}
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=False, **options
    )
    if isinstance(ids, Mapping):  # some tokenizer classes ignore return_dict=False
        ids = ids["input_ids"]
    return [int(i) for i in ids]


@functools.cache
def _can_sanitize(tokenizer_class: type) -> bool:
    return "sanitize_control_tokens" in inspect.signature(tokenizer_class.apply_chat_template).parameters


def _prefix_length(
    tokenizer: Any,
    full: list[int],
    messages: list[dict[str, Any]],
    add_generation_prompt: bool,
    turn: int,
    special_in_content: bool,
) -> int:
    """Length of `messages` rendered alone, after checking that those ids begin the full conversation."""
    try:
        prefix = _chat_ids(tokenizer, messages, add_generation_prompt, special_in_content)
    except Exception as error:  # a template may refuse a prefix (e.g. none at all before a first reply)
        raise ValueError(
            f"the chat template cannot render the conversation before turn {turn}: {error}"
        ) from error
    if full[: len(prefix)] != prefix:
        at = next(
            (i for i, (a, b) in enumerate(zip(prefix, full, strict=False)) if a != b),
            min(len(prefix), len(full)),
        )
        where = "up to the generation prompt of" if add_generation_prompt else "up to the end of"
        raise ValueError(
            f"chat template is not prefix-preserving: the conversation rendered {where} assistant turn "
            f"{turn} is not a token prefix of the whole conversation (first difference at token {at}: "
            f"{tokenizer.decode(prefix[at : at + 6])!r} alone vs {tokenizer.decode(full[at : at + 6])!r} "
            "in the whole). Either the template renders a turn differently once more turns follow (e.g. "
            "it drops reasoning from past turns or ends only the last turn with an end token), or tokens "
            "merge across the turn boundary (e.g. a reply starting with whitespace). The assistant tokens "
            "cannot be told apart safely, and inference would see a different prefix than training."
        )
    return len(prefix)


def render_conversation(
    tokenizer: Any,
    messages: Sequence[Message | Mapping[str, Any]],
    train_on: Literal["assistant", "all"] = "assistant",
    special_tokens_in_content: bool = False,
) -> Rendered:
    """Ids of the conversation under the tokenizer's chat template, with the assistant turns as targets.

    The targets of assistant turn i are the ids between `messages[:i]` rendered with the generation prompt
    (so the `<|im_start|>assistant\\n` header is context, not target) and `messages[: i + 1]` rendered
    without it (so the turn's end tokens, `<|im_end|>` or eos, are targets). Both renders must be token
    prefixes of the whole conversation, else `ValueError` (see `_prefix_length`). A template that ignores
    `add_generation_prompt` makes the header a target, which matches inference with that template.
    A leading assistant message (a greeting that answers nothing) is context. `train_on="all"` trains
    every token. Raises `ValueError` for an empty conversation or no targets. Special tokens typed in
    content are text unless `special_tokens_in_content` (see the module docstring).
    """
    if not messages:
        raise ValueError("empty conversation: nothing to render")
    dicts, special = _as_dicts(messages), special_tokens_in_content
    full = _chat_ids(tokenizer, dicts, add_generation_prompt=False, special_in_content=special)
    if train_on == "all":
        return Rendered(full, [1] * len(full))
    mask = [0] * len(full)
    for turn, message in enumerate(dicts):
        if message["role"] != "assistant" or turn == 0:  # a reply to nothing is context (and unrenderable)
            continue
        start = _prefix_length(tokenizer, full, dicts[:turn], True, turn, special)
        end = _prefix_length(tokenizer, full, dicts[: turn + 1], False, turn, special)
        if end <= start:
            raise ValueError(f"assistant turn {turn} renders no tokens after its generation prompt")
        mask[start:end] = [1] * (end - start)
    if not any(mask):
        raise ValueError("conversation has no assistant tokens to train on (train_on='assistant')")
    return Rendered(full, mask)


def render_prompt(
    tokenizer: Any, messages: Sequence[Message | Mapping[str, Any]], special_tokens_in_content: bool = False
) -> list[int]:
    """Ids of `messages` and the generation prompt: the exact context that training put before a reply."""
    if not messages:
        raise ValueError("empty prompt: nothing to render")
    return _chat_ids(tokenizer, _as_dicts(messages), True, special_tokens_in_content)


def render_response(
    tokenizer: Any,
    prompt: Sequence[Message | Mapping[str, Any]],
    response: str,
    special_tokens_in_content: bool = False,
) -> Rendered:
    """`prompt` followed by the assistant's `response`, with only the response (and its end-of-turn
    tokens) as targets: how reward models, DPO and PPO see one candidate answer. Earlier assistant turns
    inside `prompt` are context. The target ids start right after `render_prompt(prompt)`."""
    messages = [*_as_dicts(prompt), {"role": "assistant", "content": response}]
    special = special_tokens_in_content
    full = render_conversation(tokenizer, messages, special_tokens_in_content=special)
    start = _prefix_length(tokenizer, full.input_ids, messages[:-1], True, len(messages) - 1, special)
    return Rendered(full.input_ids, [0] * start + full.loss_mask[start:])


def render_text(tokenizer: Any, text: str, special_tokens_in_content: bool = False) -> Rendered:
    """Plain text + eos (with the tokenizer's own special tokens, e.g. bos), every token a target; special
    tokens typed in `text` are text unless `special_tokens_in_content`."""
    if not text:
        raise ValueError("empty text: nothing to render")
    split = not special_tokens_in_content
    ids = list(tokenizer(text, add_special_tokens=True, split_special_tokens=split)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    return Rendered(ids, [1] * len(ids))


# --------------------------------------------------------------------------------------------- packing


def pack(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Group example indices into rows of at most `max_length` tokens, first-fit decreasing.

    Longest first (ties by index), each into the first row (in creation order) with room, a new row when
    none has. Deterministic; O(n log n). Rows list their indices in placement order.
    """
    for i, n in enumerate(lengths):
        if n > max_length:
            raise ValueError(
                f"example {i} has {n} tokens, more than max_length={max_length}: truncate it first"
            )
        if n <= 0:
            raise ValueError(f"example {i} is empty")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return _first_fit([(i, lengths[i]) for i in order], max_length)


def _first_fit(items: list[tuple[int, int]], capacity: int) -> list[list[int]]:
    """First-fit with a segment tree over the rows' free space: leftmost row with free >= n, O(log rows)."""
    size = 1
    while size < max(1, len(items)):
        size *= 2
    free = [0] * (2 * size)  # leaf j: free space of row j (rows not opened yet are empty); inner: max
    for j in range(size):
        free[size + j] = capacity
    for node in range(size - 1, 0, -1):
        free[node] = max(free[2 * node], free[2 * node + 1])
    rows: list[list[int]] = []
    for index, n in items:
        node = 1
        while node < size:  # descend to the leftmost leaf with enough room
            node = 2 * node if free[2 * node] >= n else 2 * node + 1
        row = node - size
        if row == len(rows):
            rows.append([])
        rows[row].append(index)
        free[node] -= n
        while node > 1:
            node //= 2
            free[node] = max(free[2 * node], free[2 * node + 1])
    return rows


@dataclass
class PackedBatch:
    """Rows of one or more examples, right-padded.

    Padding has input `pad_id`, label -100, and position_ids that continue the row's last example, so
    padding never starts a new example: it sits causally after that example's tokens, which never see it.
    """

    input_ids: Tensor  # (B, T) long
    labels: Tensor  # (B, T) long: target of input position t, -100 where none (shifted already)
    position_ids: Tensor  # (B, T) long: 0, 1, ... restarting at every example
    n_targets: int  # labels != -100

    def to(self, device: torch.device | str) -> PackedBatch:
        return PackedBatch(
            self.input_ids.to(device), self.labels.to(device), self.position_ids.to(device), self.n_targets
        )


def _shifted_labels(example: Rendered) -> list[int]:
    """labels[t] = ids[t + 1] where that token is a target; the last token predicts nothing."""
    ids, mask = example.input_ids, example.loss_mask
    return [ids[t + 1] if mask[t + 1] else IGNORE_INDEX for t in range(len(ids) - 1)] + [IGNORE_INDEX]


def collate(rows: list[list[Rendered]], pad_id: int) -> PackedBatch:
    """Concatenate each row's examples (shifted labels, restarting positions); right-pad to the longest."""
    if not rows or any(not row for row in rows):
        raise ValueError("collate needs at least one row and at least one example per row")
    width = max(sum(len(e) for e in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids = [i for e in row for i in e.input_ids]
        positions = [p for e in row for p in range(len(e))]
        last = positions[-1]
        positions += range(last + 1, last + 1 + width - len(ids))
        input_ids[b, : len(ids)] = torch.tensor(ids)
        labels[b, : len(ids)] = torch.tensor([t for e in row for t in _shifted_labels(e)])
        position_ids[b] = torch.tensor(positions)
    return PackedBatch(input_ids, labels, position_ids, int((labels != IGNORE_INDEX).sum()))


# --------------------------------------------------------------------------------------------- attention


def _segments(position_ids: Tensor) -> list[list[tuple[int, int]]]:
    """(start, end) of each example in each row: a new one starts wherever position != previous + 1.

    The same rule as transformers' `find_packed_sequence_indices`; one host sync per call.
    """
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] != position_ids[:, :-1] + 1
    width = position_ids.shape[1]
    per_row: list[list[int]] = [[] for _ in range(position_ids.shape[0])]
    for b, t in starts.nonzero().tolist():
        per_row[b].append(t)
    return [list(zip(row, [*row[1:], width], strict=True)) for row in per_row]


def packed_attention_forward(
    module: torch.nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """Attention for packed rows: causal SDPA on each example's slice of each row.

    query (B, Hq, T, D), key/value (B, Hkv, T, D) → ((B, T, Hq, D), None), the AttentionInterface
    contract. Example boundaries come from `kwargs["position_ids"]` (B or 1, T). With a 4D mask (built
    only from a 2D padding mask, see `_packed_mask`) or a KV cache (decoding), it is plain transformers SDPA.
    """
    if attention_mask is not None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    position_ids = kwargs.get("position_ids")
    if position_ids is None:
        raise ValueError(
            f"{type(module).__name__} does not pass position_ids to its attention function: "
            "instructgpt_packed attention cannot find where packed examples start"
        )
    for name in ("softcap", "s_aux", "position_bias"):
        if kwargs.get(name) is not None:
            raise NotImplementedError(f"instructgpt_packed attention does not support `{name}`")
    segments = _segments(position_ids.expand(query.shape[0], -1))
    _check_window(kwargs.get("sliding_window"), segments)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    key, value, options = _sdpa_options(query, key, value, dropout, scaling)
    if all(len(row) == 1 for row in segments):  # nothing packed: one batched call
        out = F.scaled_dot_product_attention(query, key, value, is_causal=causal, **options)
    else:
        rows = [_row_attention(query, key, value, b, row, causal, options) for b, row in enumerate(segments)]
        out = torch.cat(rows)
    return out.transpose(1, 2).contiguous(), None


def _sdpa_options(
    query: Tensor, key: Tensor, value: Tensor, dropout: float, scaling: float | None
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """SDPA keyword arguments; grouped kv heads go to `enable_gqa`, or are repeated on older torch."""
    options: dict[str, Any] = {"dropout_p": dropout, "scale": scaling}
    if query.shape[1] != key.shape[1] and _SDPA_HAS_GQA:
        options["enable_gqa"] = True
    elif query.shape[1] != key.shape[1]:
        groups = query.shape[1] // key.shape[1]
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    return key, value, options


def _row_attention(
    query: Tensor, key: Tensor, value: Tensor, b: int, row: list[tuple[int, int]], causal: bool, options: dict
) -> Tensor:
    """(1, Hq, T, D): row b's examples attended one by one."""
    q, k, v = query[b : b + 1], key[b : b + 1], value[b : b + 1]
    pieces = [
        F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], is_causal=causal, **options)
        for s, e in row
    ]
    return torch.cat(pieces, dim=2)


def _check_window(window: int | None, segments: list[list[tuple[int, int]]]) -> None:
    longest = max(e - s for row in segments for s, e in row)
    if window is not None and longest > window:
        raise NotImplementedError(
            f"instructgpt_packed attention has no sliding window: an example of {longest} tokens exceeds the "
            f"model's window of {window}"
        )


def _packed_mask(*args: Any, attention_mask: Tensor | None = None, **kwargs: Any) -> Tensor | None:
    """Mask builder paired with `packed_attention_forward`: none in training (the position_ids say it all);
    for a 2D padding mask (generation with left padding), transformers' own SDPA mask."""
    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register_packed_attention() -> None:
    """Register `instructgpt_packed` with transformers (attention and mask builders); idempotent."""
    AttentionInterface.register(PACKED_ATTENTION, packed_attention_forward)
    AttentionMaskInterface.register(PACKED_ATTENTION, _packed_mask)


def use_packed_attention(model: torch.nn.Module) -> torch.nn.Module:
    """Switch `model` (a transformers model, possibly wrapped, e.g. by PEFT) to per-example packed attention.

    Feed it `PackedBatch.input_ids` and `position_ids` and no `attention_mask`. Generation still works: with a
    padding mask or a KV cache the function is plain SDPA.
    """
    base = next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    if base is None:
        raise ValueError(f"{type(model).__name__} holds no transformers PreTrainedModel")
    if not base._can_set_attn_implementation():
        name = type(base).__name__
        raise ValueError(f"{name} does not dispatch attention through transformers' AttentionInterface")
    register_packed_attention()
    base.set_attn_implementation(PACKED_ATTENTION)
    return model


# --------------------------------------------------------------------------------------------- showing


TRAINED_STYLE = "bold black on green"
CONTEXT_STYLE = "dim"


def token_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The text each token adds, decoded incrementally so multi-byte characters split across tokens show
    once (on the token that completes them); special tokens are kept."""
    pieces: list[str] = []
    prefix_at, read_at = 0, 0
    for i in range(len(ids)):
        before = tokenizer.decode(ids[prefix_at:read_at], skip_special_tokens=False)
        after = tokenizer.decode(ids[prefix_at : i + 1], skip_special_tokens=False)
        if after.endswith("\ufffd") or len(after) < len(before):
            pieces.append("")  # an incomplete character: shown with the token that completes it
            continue
        pieces.append(after[len(before) :])
        prefix_at, read_at = read_at, i + 1
    return pieces


def show_mask(tokenizer: Any, rendered: Rendered) -> Text:
    """The decoded example with trained tokens highlighted (`TRAINED_STYLE`) and context dimmed.

    A trained newline is drawn as `↵` before the line break, so that it can be seen.
    """
    text = Text()
    for piece, trained in zip(token_pieces(tokenizer, rendered.input_ids), rendered.loss_mask, strict=True):
        if trained:
            text.append(piece.replace("\n", "↵\n"), style=TRAINED_STYLE)
        else:
            text.append(piece, style=CONTEXT_STYLE)
    return text
