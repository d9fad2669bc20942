"""One row's text, made incrementally from its sampled tokens, with stop strings (`TextStream`).

A piece is released only once it is final, so an incomplete UTF-8 character split across byte-level tokens
waits for its last byte, and text that might be the start of a stop string waits until it cannot be. The
pieces therefore concatenate exactly to the row's text, which excludes the stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_REPLACEMENT = "\ufffd"  # what decoding an incomplete UTF-8 byte sequence yields
# Tokens held back while the decoded tail ends in U+FFFD before it is released anyway: real text completes
# a character within a few byte tokens; only invalid bytes (e.g. from an untrained model) wait this long.
_MAX_HELD_TOKENS = 32


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Index in `text` (from `start`) where the earliest of `stops` begins, or None."""
    found = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(found) if found else None


def partial_stop_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that is the beginning of a stop string (not a whole one)."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


class TextStream:
    """One row's text, decoded incrementally from its tokens, with stop strings.

    `push(token_id)` and `close()` return the newly final piece of text; the pieces concatenate to `text`.
    Decoding uses a sliding window of ids (as vLLM does) so each step decodes a few tokens, not the
    whole output, and a window ending in an incomplete character (U+FFFD) waits for more tokens (at most
    `_MAX_HELD_TOKENS`, so invalid bytes cannot make decoding quadratic). With a byte-level BPE (the
    presets, GPT-2, Llama 3, Qwen) `text` equals `tokenizer.decode(ids, skip_special_tokens=True)` cut at
    the stop string whenever the output is valid UTF-8.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.ids: list[int] = []
        self.decoded = ""  # all text decoded so far (may run past a stop string)
        self.stop_at: int | None = None  # where the first stop string begins in `decoded`
        self._released = 0  # characters of `decoded` already handed out
        self._window = (0, 0)  # ids[start:read] produced the last released decode
        self._longest = max((len(s) for s in self.stops), default=0)

    @property
    def text(self) -> str:
        return self.decoded if self.stop_at is None else self.decoded[: self.stop_at]

    @property
    def stopped(self) -> bool:
        return self.stop_at is not None

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        return self._accept(self._decode_new(final=False), final=False)

    def close(self) -> str:
        """Release everything still held (an incomplete character decodes as U+FFFD)."""
        return self._accept(self._decode_new(final=True), final=True)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _decode_new(self, final: bool) -> str:
        start, read = self._window
        if read == len(self.ids):
            return ""
        before = self._decode(self.ids[start:read])
        after = self._decode(self.ids[start:])
        waiting = after.endswith(_REPLACEMENT) and len(self.ids) - read < _MAX_HELD_TOKENS
        if len(after) <= len(before) or (waiting and not final):
            return ""
        self._window = (read, len(self.ids))
        return after[len(before) :]

    def _accept(self, piece: str, final: bool) -> str:
        if self.stop_at is not None:
            return ""
        search_from = max(0, len(self.decoded) - self._longest + 1)
        self.decoded += piece
        self.stop_at = find_stop(self.decoded, self.stops, search_from) if self.stops else None
        if self.stop_at is not None:
            end = self.stop_at
        else:
            end = len(self.decoded) - (0 if final else partial_stop_length(self.decoded, self.stops))
        out = self.decoded[self._released : end]
        self._released = max(self._released, end)
        return out
