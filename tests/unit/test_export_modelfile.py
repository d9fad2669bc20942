"""The Ollama Modelfile written beside a GGUF: its TEMPLATE translated from the chat template (ChatML,
and a template that adds a default system prompt), its stop tokens; a template whose turns depend on more
than their role gets no TEMPLATE. When Go is installed, the TEMPLATE is rendered with Go's text/template
(the engine Ollama runs) and compared with the Jinja rendering of the same conversations."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from instructgpt.export.modelfile import go_template, modelfile, turn_format
from instructgpt.tokenizer import DEFAULT_CHAT_TEMPLATE, train_tokenizer

CHATML_MODELFILE = '''# ollama create NAME -f Modelfile  (then: ollama run NAME)
FROM ./tiny.gguf
TEMPLATE """{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}\
{{ if eq $m.Role "system" }}<|im_start|>system
{{ $m.Content }}<|im_end|>
{{ else if eq $m.Role "user" }}<|im_start|>user
{{ $m.Content }}<|im_end|>
{{ else if eq $m.Role "assistant" }}<|im_start|>assistant
{{ $m.Content }}{{ if not $last }}<|im_end|>
{{ end }}{{ end }}{{ if and $last (ne $m.Role "assistant") }}<|im_start|>assistant
{{ end }}{{ end }}"""
PARAMETER stop "<|im_end|>"
PARAMETER stop "<|im_start|>"
PARAMETER stop "<|endoftext|>"
'''
# ChatML with a default system prompt when the conversation has none (as SmolLM2's template does).
DEFAULT_SYSTEM = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Llama-2 style: the system message is folded into the first user turn, so a turn is not its role alone.
FOLDED_SYSTEM = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{% set sys = message['content'] %}"
    "{% elif message['role'] == 'user' %}[INST] {% if sys is defined and loop.index0 == 1 %}<<SYS>>{{ sys }}"
    "<</SYS>> {% endif %}{{ message['content'] }} [/INST]{% else %} {{ message['content'] }}</s>{% endif %}"
    "{% endfor %}"
)
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}],
    [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?\nThanks {{ braces }}"},
    ],
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["a small text to train on, 一些中文"] * 4, vocab_size=300)


def with_template(tokenizer, template):
    tokenizer = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|endoftext|>")
    tokenizer.chat_template = template
    return tokenizer


def test_chatml_modelfile(tokenizer):
    assert tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE
    assert modelfile(tokenizer, "tiny.gguf") == CHATML_MODELFILE


def test_a_default_system_prompt_becomes_a_preamble(tokenizer):
    tokenizer = with_template(tokenizer, DEFAULT_SYSTEM)
    turns = turn_format(tokenizer)
    assert turns.preamble == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    template = go_template(turns)
    assert template.startswith(
        '{{ if and .Messages (ne (index .Messages 0).Role "system") }}<|im_start|>system\nYou are a helpful'
    )
    for messages in CONVERSATIONS:
        assert turns.render(messages, True) == tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )


def test_a_template_that_is_not_per_role_gets_no_template(tokenizer):
    tokenizer = with_template(tokenizer, FOLDED_SYSTEM)
    with pytest.warns(UserWarning, match="not translated into the Modelfile"):
        text = modelfile(tokenizer, "m.gguf")
    assert "TEMPLATE" not in text and text.splitlines()[1] == "FROM ./m.gguf"
    assert 'PARAMETER stop "<|endoftext|>"' in text


GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	var messages []Message
	json.Unmarshal([]byte(os.Args[2]), &messages)
	t := template.Must(template.New("m").Parse(os.Args[1]))
	if err := t.Execute(os.Stdout, map[string]any{"Messages": messages}); err != nil {
		panic(err)
	}
}
"""


@pytest.mark.parametrize("template", [DEFAULT_CHAT_TEMPLATE, DEFAULT_SYSTEM])
def test_go_renders_the_template_as_jinja_does(tokenizer, tmp_path, template):
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (the TEMPLATE is Go text/template, as Ollama runs it)")
    (tmp_path / "render.go").write_text(GO_RENDER)
    binary = tmp_path / "render"
    env = {"HOME": str(tmp_path), "GOCACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    subprocess.run([go, "build", "-o", str(binary), "render.go"], check=True, cwd=tmp_path, env=env)
    tokenizer = with_template(tokenizer, template)
    go_text = go_template(turn_format(tokenizer))
    for messages in CONVERSATIONS:
        rendered = subprocess.run(
            [str(binary), go_text, json.dumps(messages)], check=True, capture_output=True, text=True
        ).stdout
        assert rendered == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
