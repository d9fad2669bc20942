"""The terminal chat (`instructgpt chat`): a multi-turn conversation with a model, answers streamed as
`sampling.generate` makes them, with /commands to reset, set the system prompt and save.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instructgpt.config import SamplingOptions
from instructgpt.generation.sampling import generate
from instructgpt.records import Conversation, Message
from instructgpt.records import to_dict as record_dict

CHAT_HELP = "commands: /reset (forget the turns), /system TEXT (set the system prompt), /save FILE, /quit"


@dataclass
class ChatSession:
    """The state of a terminal chat: an optional system prompt and the turns so far."""

    system: str = ""
    turns: list[Message] = field(default_factory=list)

    def messages(self) -> list[Message]:
        head = [Message("system", self.system)] if self.system else []
        return head + self.turns


def chat_repl(
    model: Any,
    tokenizer: Any,
    options: SamplingOptions,
    input_fn: Callable[[str], str] = input,
    print_fn: Callable[..., None] = print,
    system: str = "",
) -> ChatSession:
    """A multi-turn chat on the terminal, answers streamed as they are generated; returns the session.

    Lines starting with `/` are commands (`CHAT_HELP`); end of input (Ctrl-D) also quits.
    """
    session = ChatSession(system=system)
    print_fn(CHAT_HELP)
    while True:
        try:
            line = input_fn("> ")
        except EOFError:
            return session
        if line.startswith("/"):
            if not _command(session, line, print_fn):
                return session
            continue
        if not line.strip():
            continue
        session.turns.append(Message("user", line))
        prompt = _fit_context(model, tokenizer, session, options.max_new_tokens, print_fn)
        stream = lambda _i, piece: print_fn(piece, end="", flush=True)  # noqa: E731
        answer = generate(model, tokenizer, [prompt], options, on_token=stream)[0]
        print_fn("")
        session.turns.append(Message("assistant", answer.text))


def _command(session: ChatSession, line: str, print_fn: Callable[..., None]) -> bool:
    """Carry out one `/command`; False means quit."""
    name, _, arg = line.partition(" ")
    if name == "/quit":
        return False
    if name == "/reset":
        session.turns.clear()
        print_fn("(conversation cleared)")
    elif name == "/system":
        session.system = arg.strip()
        print_fn(f"(system prompt {'set' if session.system else 'removed'})")
    elif name == "/save" and arg.strip():
        path = Path(arg.strip()).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        conversation = Conversation(id=f"chat-{int(time.time())}", messages=session.messages(), source="chat")
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record_dict(conversation), ensure_ascii=False) + "\n")
        print_fn(f"(saved {len(conversation.messages)} messages to {path})")
    else:
        print_fn(CHAT_HELP)
    return True


def _fit_context(
    model: Any, tokenizer: Any, session: ChatSession, max_new_tokens: int, print_fn: Callable[..., None]
) -> list[int]:
    """The prompt ids; the oldest exchanges are forgotten while prompt + answer exceed the context."""
    from instructgpt.chat_format import render_prompt as render

    limit = getattr(model.config, "max_position_embeddings", None)
    prompt = render(tokenizer, session.messages())
    while limit and len(prompt) + max_new_tokens > limit and len(session.turns) > 2:
        del session.turns[:2]  # one user turn and its answer
        print_fn("(context full: the oldest exchange was forgotten)")
        prompt = render(tokenizer, session.messages())
    return prompt
