"""The prompts the synthesizers send, in English and Chinese, and how a prompt becomes a request.

A `PromptText` has a `body` both prompt styles send, an `ask` that only chat style adds (chat models need
to be told what to do with a list; base models only need it to continue), and a `lead` that only
completion style adds at the end (`9.`, `Q1:`): a base model continues from it, and the parsers get it
back in front of the reply (`reply_text`).

The wording is this project's own. The formats it asks for are the ones parse.py reads: numbered
instructions, `Input:`/`Output:` examples (input first), `Class label:`/`Input:` examples (output
first, for classification tasks) and `Q1:`/`A1:` pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from instructgpt.config import SamplingOptions
from instructgpt.instruct.synth.backends import Completion, GenRequest
from instructgpt.records import Message

PromptStyle = Literal["chat", "completion"]
Instance = tuple[str, str]  # (input, output); input "" when the task needs none


@dataclass(frozen=True)
class PromptText:
    body: str
    ask: str = ""  # chat style only: the request after the body
    lead: str = ""  # completion style only: the start of the answer


@dataclass(frozen=True)
class Demo:
    """A seed task shown as an example of the format: its instruction and some instances."""

    instruction: str
    instances: tuple[Instance, ...]


def to_request(prompt: PromptText, style: PromptStyle, sampling: SamplingOptions) -> GenRequest:
    if style == "chat":
        text = f"{prompt.body}\n\n{prompt.ask}" if prompt.ask else prompt.body
        return GenRequest(sampling, messages=[Message("user", text)])
    return GenRequest(sampling, prompt=f"{prompt.body}\n{prompt.lead}" if prompt.lead else prompt.body)


def reply_text(prompt: PromptText, style: PromptStyle, completion: Completion) -> str:
    """The reply as the parsers read it: after the lead it continued from, in completion style."""
    return f"{prompt.lead}{completion.text}" if style == "completion" else completion.text


_EN = {
    "tasks": "Below are tasks that people give to an AI assistant. Each is one complete instruction. They "
    "span many topics and kinds of work: writing, reasoning, advice, classification, editing, coding, "
    "math and more. Some come with an input to work on and some do not.",
    "more": "Write {n} more tasks like these, numbered {first} to {last}. Make each differ from every task "
    "above in topic and wording. Write only the numbered tasks.",
    "classify": "A classification task is one whose answer is picked from a small, fixed set of labels, "
    "such as positive/negative, true/false or a category name. Say whether each task is one.",
    "classify_line": "Task: {task}\nClassification task:",
    "classify_ask": "Answer Yes or No for the last task.",
    "input_first": "For each task, here are inputs it could be given and the outputs that correctly answer "
    'them. A task that needs no input has "Input: none".',
    "output_first": "Each task below is a classification task. For each, a class label comes first and then "
    "an input that belongs to it; together the examples cover the different labels.",
    "task": "Task: {task}",
    "example": "Example {k}",
    "input": "Input: {text}",
    "output": "Output: {text}",
    "label": "Class label: {text}",
    "none": "none",
    "instances_ask": "Write up to {n} examples for the last task in the same format.",
    "context": "Read the text below, then write {n} questions that a reader can answer from it, each "
    "followed by its answer. Every answer must be supported by the text: use its facts and, where you "
    "can, its words. Ask different kinds of question: facts, reasons, meanings, summaries.\n\n"
    'Text:\n{text}\n\nUse exactly this format, shown here for another text ("The Nile flows north through '
    'eleven countries into the Mediterranean Sea."):\nQ1: Which sea does the Nile flow into?\nA1: The '
    "Mediterranean Sea.\nQ2: In which direction does the Nile flow?\nA2: North.",
    "context_lead": "Q1:",
}
_ZH = {
    "tasks": "下面是人们交给 AI 助手的一些任务，每条都是一条完整的指令。它们涉及各种话题和各类工作："
    "写作、推理、建议、分类、改写、编程、数学等等；有的附带需要处理的输入，有的不需要。",
    "more": "请再写{n}条这样的任务，编号从{first}到{last}。每条在话题和措辞上都要与上面所有任务不同。"
    "只写编号的任务，不写别的内容。",
    "classify": "分类任务是指答案从一小组固定的标签中选出的任务，例如正面/负面、对/错或某个类别名。"
    "请判断每个任务是不是分类任务。",
    "classify_line": "任务：{task}\n是否分类任务：",
    "classify_ask": "请对最后一个任务回答“是”或“否”。",
    "input_first": "下面每个任务都给出了可能的输入，以及正确回答它们的输出。不需要输入的任务写“输入：无”。",
    "output_first": "下面每个任务都是分类任务。每个例子先给出类别，再给出属于这个类别的输入；"
    "各个例子合起来覆盖不同的类别。",
    "task": "任务：{task}",
    "example": "例子{k}",
    "input": "输入：{text}",
    "output": "输出：{text}",
    "label": "类别：{text}",
    "none": "无",
    "instances_ask": "请按同样的格式为最后一个任务写最多{n}个例子。",
    "context": "阅读下面的文本，提出{n}个读者能从文本中找到答案的问题，每个问题后面写出答案。"
    "每个答案都必须有文本依据：使用文本中的事实，尽量使用文本中的原话。问题的类型要多样："
    "事实、原因、含义、概括。\n\n文本：\n{text}\n\n严格按照下面的格式写（以另一段文本“长江全长约6300公里，"
    "最后流入东海。”为例）：\n问题1：长江最后流入哪里？\n答案1：东海。\n问题2：长江全长大约多少公里？\n答案2：约6300公里。",
    "context_lead": "问题1：",
}
_TEXTS = {"en": _EN, "zh": _ZH}
# The questions of the context prompts' worked example: a pair repeating one was copied, not made.
CONTEXT_EXAMPLE_QUESTIONS = (
    "Which sea does the Nile flow into?",
    "In which direction does the Nile flow?",
    "长江最后流入哪里？",
    "长江全长大约多少公里？",
)


def _texts(lang: str) -> dict[str, str]:
    return _TEXTS["zh" if lang == "zh" else "en"]


def instruction_prompt(examples: Sequence[str], new: int, lang: str) -> PromptText:
    """The examples numbered 1..k, and a request for `new` more numbered k+1 onwards."""
    t = _texts(lang)
    listed = "\n".join(f"{i}. {text}" for i, text in enumerate(examples, 1))
    first, last = len(examples) + 1, len(examples) + new
    ask = t["more"].format(n=new, first=first, last=last)
    return PromptText(f"{t['tasks']}\n\n{listed}", ask, f"{first}.")


def classify_prompt(instruction: str, demos: Sequence[tuple[str, bool]], lang: str) -> PromptText:
    """Is `instruction` a classification task? After demos answered Yes/No (是/否)."""
    t = _texts(lang)
    yes, no = ("是", "否") if lang == "zh" else (" Yes", " No")
    shown = [f"{t['classify_line'].format(task=task)}{yes if flag else no}" for task, flag in demos]
    body = "\n\n".join([t["classify"], *shown, t["classify_line"].format(task=instruction)])
    return PromptText(body, t["classify_ask"])


def instances_prompt(
    instruction: str, demos: Sequence[Demo], output_first: bool, count: int, lang: str
) -> PromptText:
    """Ask for up to `count` instances of `instruction` in the format the demos show: input then output,
    or (for a classification task) class label then input."""
    t = _texts(lang)
    blocks = [t["output_first" if output_first else "input_first"]]
    blocks += [_demo_block(demo, output_first, t) for demo in demos]
    blocks.append(t["task"].format(task=instruction))
    lead = t["label" if output_first else "input"].format(text="").rstrip()
    return PromptText(
        "\n\n".join(blocks), t["instances_ask"].format(n=count), f"{t['example'].format(k=1)}\n{lead}"
    )


def _demo_block(demo: Demo, output_first: bool, t: dict[str, str]) -> str:
    lines = [t["task"].format(task=demo.instruction)]
    for k, (given, wanted) in enumerate(demo.instances, 1):
        shown_input = t["input"].format(text=given or t["none"])
        if output_first:
            lines += [t["example"].format(k=k), t["label"].format(text=wanted), shown_input]
        else:
            lines += [t["example"].format(k=k), shown_input, t["output"].format(text=wanted)]
    return "\n".join(lines)


def context_prompt(text: str, pairs: int, lang: str) -> PromptText:
    """Ask for `pairs` question–answer pairs grounded in `text`, as `Q1:/A1:` (`问题1：/答案1：`)."""
    t = _texts(lang)
    return PromptText(t["context"].format(n=pairs, text=text), "", t["context_lead"])
