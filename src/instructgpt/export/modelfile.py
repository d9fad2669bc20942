"""Ollama's Modelfile for an exported GGUF: `FROM ./NAME.gguf`, a Go-template TEMPLATE translated from the
tokenizer's Jinja chat template, and a `PARAMETER stop` line per end-of-turn token.

The translation reads the chat template's output, not its source: each role's turn is rendered with a
marker as its content, which gives the text before and after the content of a system, user and assistant
turn, the generation prompt, and any preamble the template writes when a conversation has no system
message (SmolLM2's default system prompt). The parts are then checked by rebuilding the template's own
rendering of several conversations from them; a template they cannot rebuild (one whose turns depend on
more than their role) gets no TEMPLATE line, with a warning, and Ollama falls back to its own detection.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

_MARK = "Q7mark{}Z"  # turn contents: no whitespace (a template may strip it), no markup


@dataclass(frozen=True)
class TurnFormat:
    """The text around each role's content; `preamble` starts a conversation without a system turn."""

    prefix: dict[str, str]
    suffix: dict[str, str]
    generation_prompt: str
    preamble: str

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        """What the chat template renders for `messages`, rebuilt from these parts."""
        text = self.preamble if messages and messages[0]["role"] != "system" else ""
        text += "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in messages)
        return text + (self.generation_prompt if add_generation_prompt else "")


def modelfile(tokenizer: PreTrainedTokenizerBase, gguf_name: str) -> str:
    """The Modelfile text for `gguf_name` (a file beside it) and `tokenizer`'s chat template."""
    lines = [f"# ollama create NAME -f Modelfile  (then: ollama run NAME)\nFROM ./{gguf_name}"]
    turns = turn_format(tokenizer)
    if turns is not None:
        template = go_template(turns)
        if '"""' in template:
            warnings.warn('the chat template writes """: the Modelfile has no TEMPLATE', stacklevel=2)
        else:
            lines.append(f'TEMPLATE """{template}"""')
    lines += [
        f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in stop_tokens(tokenizer, turns)
    ]
    return "\n".join(lines) + "\n"


def turn_format(tokenizer: PreTrainedTokenizerBase) -> TurnFormat | None:
    """The parts of `tokenizer`'s chat template, or None (with a warning) when they do not rebuild it."""
    if not tokenizer.chat_template:
        return None

    def render(messages: list[dict[str, str]], gen: bool = False) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)

    system, user, assistant = (
        {"role": role, "content": _MARK.format(role)} for role in ("system", "user", "assistant")
    )
    try:
        pieces = {
            "system": render([system]),
            "user": _after(render([system, user]), render([system])),
            "assistant": _after(render([system, user, assistant]), render([system, user])),
        }
        prefix = {role: text.partition(_MARK.format(role))[0] for role, text in pieces.items()}
        suffix = {role: text.partition(_MARK.format(role))[2] for role, text in pieces.items()}
        generation = _after(render([system, user], True), render([system, user]))
        preamble = render([user]).partition(prefix["user"] + user["content"])[0]
        turns = TurnFormat(prefix, suffix, generation, preamble)
        ok = all(turns.render(c, g) == render(c, g) for c, g in _checks(system, user, assistant))
    except (ValueError, KeyError, TypeError) as err:  # a template that raises for some of these turns
        ok, reason = False, str(err)
    else:
        reason = "its turns depend on more than their role"
    if not ok:
        warnings.warn(f"the chat template is not translated into the Modelfile: {reason}", stacklevel=2)
        return None
    return turns


def _after(longer: str, shorter: str) -> str:
    if not longer.startswith(shorter):
        raise ValueError("a conversation's rendering does not start with its first turns' rendering")
    return longer[len(shorter) :]


def _checks(*turn: dict[str, str]) -> list[tuple[list[dict[str, str]], bool]]:
    system, user, assistant = turn
    return [
        ([user], True),
        ([user, assistant, user], True),
        ([system, user, assistant, user, assistant], False),
        ([user, assistant], False),
    ]


def go_template(turns: TurnFormat) -> str:
    """The Go template (Ollama's TEMPLATE) that renders `.Messages` as the parts say: the preamble when the
    first message is not a system one, each message between its role's prefix and suffix (the last
    assistant message left open, as a reply to continue), and the generation prompt after a last
    message that is not the assistant's. Written without whitespace trimming, so every literal is kept."""
    text = ""
    if turns.preamble:
        text += '{{ if and .Messages (ne (index .Messages 0).Role "system") }}' + _literal(turns.preamble)
        text += "{{ end }}"
    text += "{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
    for i, role in enumerate(("system", "user", "assistant")):
        suffix = _literal(turns.suffix[role])
        if role == "assistant":
            suffix = "{{ if not $last }}" + suffix + "{{ end }}"
        keyword = "if" if i == 0 else "else if"
        text += f'{{{{ {keyword} eq $m.Role "{role}" }}}}' + _literal(turns.prefix[role])
        text += "{{ $m.Content }}" + suffix
    text += "{{ end }}"
    text += '{{ if and $last (ne $m.Role "assistant") }}' + _literal(turns.generation_prompt) + "{{ end }}"
    return text + "{{ end }}"


def _literal(text: str) -> str:
    """`text` as template output: as it is, or as a quoted Go string when it holds an action's `{{`."""
    return text if "{{" not in text else "{{ " + json.dumps(text, ensure_ascii=False) + " }}"


def stop_tokens(tokenizer: PreTrainedTokenizerBase, turns: TurnFormat | None) -> list[str]:
    """The special tokens that end an assistant turn (in its suffix) or open the next one (in the user
    prefix), then eos: generation stops at any of them."""
    specials = [t for t in tokenizer.added_tokens_decoder.values() if t.special]
    texts = [turns.suffix["assistant"], turns.prefix["user"]] if turns else []
    found: list[Any] = [t.content for text in texts for t in specials if t.content in text]
    if tokenizer.eos_token:
        found.append(tokenizer.eos_token)
    return list(dict.fromkeys(found))
