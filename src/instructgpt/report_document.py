"""The run report's document: its blocks (heading, text, table, image, folded code), rendered twice, as
Markdown linking the PNGs and as self-contained HTML with the PNGs embedded as base64; and the helpers that
make cells and images (matplotlib's Agg backend) for report.py and report_eval.py.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Text:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: Path  # a PNG inside RUN_DIR/report_files
    alt: str


@dataclass
class Collapsed:
    """A folded code block: the recipe, a stage's config."""

    summary: str
    code: str
    lang: str = "yaml"


def fmt_value(value: Any) -> str:
    """A table cell for a number or value: floats to 4 places (large ones grouped), ints grouped."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed); ImportError when not installed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt: Any, fig: Any, path: Path, alt: str) -> Image:
    """Save `fig` as the PNG `path`, close it, and return it as an Image block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Image(path, alt)


# ---------------------------------------------------------------------------------------- rendering


def render_markdown(blocks: list[Any], run_dir: Path) -> str:
    """Markdown; images are linked relative to `run_dir`, cell text is escaped."""
    return "\n\n".join(_md(block, run_dir) for block in blocks) + "\n"


def _md(block: Any, run_dir: Path) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Table):
        lines = [_md_row(block.headers), "|" + "---|" * len(block.headers)]
        return "\n".join(lines + [_md_row(row) for row in block.rows])
    if isinstance(block, Image):
        return f"![{block.alt}]({block.path.relative_to(run_dir).as_posix()})"
    code = f"```{block.lang}\n{block.code.rstrip()}\n```"
    return f"<details><summary>{html.escape(block.summary)}</summary>\n\n{code}\n\n</details>"


def _md_row(cells: Sequence[str]) -> str:
    escaped = (html.escape(str(c)).replace("|", "\\|").replace("\n", "<br>") for c in cells)
    return "| " + " | ".join(escaped) + " |"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;"
    "vertical-align:top;text-align:left}pre{background:#f5f5f5;padding:.5em;overflow:auto}"
    "img{max-width:100%}"
)


def render_html(blocks: list[Any], title: str) -> str:
    """One self-contained HTML page: every text escaped, images embedded as base64 PNG."""
    body = "\n".join(_html(block) for block in blocks)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _html(block: Any) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>\n" for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}</tbody></table>"
    if isinstance(block, Image):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        return f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">'
    code = f"<pre><code>{html.escape(block.code)}</code></pre>"
    return f"<details><summary>{html.escape(block.summary)}</summary>\n{code}\n</details>"


def _cell(text: str) -> str:
    return html.escape(str(text)).replace("\n", "<br>")
