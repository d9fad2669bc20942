"""The Jinja2 sandbox template packs render in: immutable, no loader, strict undefined values, and bounded.

A pack is data that may come from anywhere, so a render is limited in what it can cost: CPU time (checked
at every call, attribute, item, operator and output chunk), the characters it writes, and the operators
and filters that could build a huge value in one step, which no time check could interrupt
(`9 ** 10**8`, `'a' * 10**9`, `text|center(10**9)`). Going over a limit raises `RenderLimitError`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sized
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_SECONDS = 2.0  # CPU time of one render; a template renders in microseconds
MAX_INT_BITS = 4096  # the largest integer an operator may make
MAX_FILTER_NUMBER = 100_000  # the largest whole number a filter takes (a width, a count)


class RenderLimitError(SecurityError):
    """A render went over one of the limits; the message says which."""


@dataclass(frozen=True)
class _Budget:
    deadline: float  # in time.thread_time()
    max_chars: int


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_render_budget", default=None)


def render_bounded(template: Template, context: dict[str, Any], max_chars: int) -> str:
    """`template` rendered with `context`, in at most MAX_SECONDS of CPU and `max_chars` characters."""
    token = _BUDGET.set(_Budget(time.thread_time() + MAX_SECONDS, max_chars))
    try:
        parts, size = [], 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > max_chars:
                raise RenderLimitError(f"renders more than {max_chars} characters")
            _check_time()
            parts.append(chunk)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)


def _check_time() -> None:
    budget = _BUDGET.get()
    if budget is not None and time.thread_time() > budget.deadline:
        raise RenderLimitError(f"took more than {MAX_SECONDS} s of CPU time")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `**` and `*` on integers making more than MAX_INT_BITS, and `*` or `+` making a string or
    list longer than the render's character budget, before computing them."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**" and ints and right > 0 and abs(left) > 1:
        bits = right * math.log2(abs(left))
    elif operator == "*" and ints:
        bits = left.bit_length() + right.bit_length()
    else:
        bits = 0
    if bits > MAX_INT_BITS:
        raise RenderLimitError(f"`{operator}` would make an integer of more than {MAX_INT_BITS} bits")
    budget = _BUDGET.get()
    if budget is not None and _made_length(operator, left, right) > budget.max_chars:
        raise RenderLimitError(
            f"`{operator}` would make a value of more than {budget.max_chars} characters or items"
        )


def _made_length(operator: str, left: Any, right: Any) -> int:
    """The length of the string or list that `left operator right` makes (0 for numbers)."""
    if operator == "+" and isinstance(left, Sized) and isinstance(right, Sized):
        return len(left) + len(right)
    if operator == "*" and isinstance(left, Sized) and isinstance(right, int):
        return len(left) * right
    if operator == "*" and isinstance(right, Sized) and isinstance(left, int):
        return len(right) * left
    return 0


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, refusing whole-number arguments over MAX_FILTER_NUMBER (widths, counts)."""

    @functools.wraps(function)  # keeps jinja's pass_context / pass_eval_context marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and abs(value) > MAX_FILTER_NUMBER:
                raise RenderLimitError(f"filter {name}: {value} is over the limit of {MAX_FILTER_NUMBER}")
        return function(*args, **kwargs)

    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the limits above, strict undefined values and no loader (no files).
    `trim_blocks`/`lstrip_blocks`: a `{% for %}` line leaves no stray newline or indentation."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)
