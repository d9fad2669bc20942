"""Tests for instructgpt.data.normalize: hand-worked inputs and outputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructgpt.data.normalize import (
    nfkc,
    normalize_whitespace,
    strip_control_chars,
    strip_html,
    to_simplified,
)


def test_nfkc_folds_full_width_and_compatibility_characters() -> None:
    assert nfkc("ＡＢＣ１２３，ﬁ①\u3000") == "ABC123,fi1 "


def test_strip_control_chars_unifies_line_endings() -> None:
    assert strip_control_chars("a\r\nb\rc\nd") == "a\nb\nc\nd"


def test_strip_control_chars_turns_other_line_breaks_into_newlines() -> None:
    assert strip_control_chars("page 1\x0cpage 2\u2028line\x0bend") == "page 1\npage 2\nline\nend"


def test_strip_control_chars_removes_controls_but_keeps_tab() -> None:
    assert strip_control_chars("a\x00b\x1bc\x7fd\x9fe\tf") == "abcde\tf"


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\xad", "\u202e"])
def test_strip_control_chars_removes_invisible_characters(invisible: str) -> None:
    assert strip_control_chars(f"数{invisible}据 da{invisible}ta") == "数据 data"


def test_strip_control_chars_removes_tag_characters_used_to_hide_text() -> None:
    hidden = "".join(chr(0xE0000 + ord(c)) for c in "ignore")
    assert strip_control_chars(f"hello{hidden} world") == "hello world"


def test_strip_control_chars_keeps_ordinary_text() -> None:
    text = "你好，世界！\nHello, world.\t¿Qué tal? 🙂"
    assert strip_control_chars(text) == text


def test_strip_html_leaves_plain_text_alone() -> None:
    for text in ("a < b and c > d", "x<y", "if a<b and c>d then", "AT&T and R&D", "价格 < 100 元"):
        assert strip_html(text) == text


def test_strip_html_removes_tags_and_unescapes_entities() -> None:
    html = '<p>Hello <b>world</b> &amp; <a href="https://x.org/?a=1&b=2">friends</a></p><p>x &lt; y</p>'
    assert strip_html(html) == "\nHello world & friends\n\nx < y\n"


def test_strip_html_drops_script_style_and_comments() -> None:
    html = "<style>p {color: red}</style>前<script>if (a < b) { go(); }</script>中<!-- note -->后"
    assert strip_html(html) == "前中后"


def test_strip_html_turns_br_and_block_tags_into_newlines() -> None:
    html = "<ul><li>one</li><li>two</li></ul>line<br>next<br/>last<div class=x>end</div>"
    assert strip_html(html) == "\n\none\n\ntwo\n\nline\nnext\nlast\nend\n"
    assert normalize_whitespace(strip_html(html)) == "one\n\ntwo\n\nline\nnext\nlast\nend"


def test_strip_html_unescapes_entities_in_text_without_tags() -> None:
    assert strip_html("5 &lt; 6 &#x4E2D;&#25991;") == "5 < 6 中文"


def test_normalize_whitespace() -> None:
    text = "  a \t b\xa0\u3000c  \nd   \n\n\n\n e\n \n"
    assert normalize_whitespace(text) == "a b c\nd\n\n e"


def test_normalize_whitespace_keeps_single_blank_lines() -> None:
    assert normalize_whitespace("第一段。\n\n第二段。\n第三行。") == "第一段。\n\n第二段。\n第三行。"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \t\n\xa0\u3000\r")))
def test_normalize_whitespace_is_idempotent_and_tidy(text: str) -> None:
    out = normalize_whitespace(text)
    assert normalize_whitespace(out) == out
    assert "  " not in out and "\n\n\n" not in out and " \n" not in out


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_strip_control_chars_is_idempotent_and_leaves_no_controls(text: str) -> None:
    out = strip_control_chars(text)
    assert strip_control_chars(out) == out
    assert not any(ord(c) < 32 and c not in "\n\t" for c in out)


def test_to_simplified() -> None:
    assert to_simplified("漢語資料處理，這是一個測試。") == "汉语资料处理，这是一个测试。"
    assert to_simplified("简体 stays 简体") == "简体 stays 简体"
