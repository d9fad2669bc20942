"""Task templates: instruction phrasings kept as data (YAML packs) and rendered in a Jinja2 sandbox.

A pack is one YAML file per task family and language (`templates/sentiment.en.yaml`):

    family: sentiment
    lang: en
    templates:
      - id: sentiment_en_options
        task: sentiment_binary
        kind: zero_shot                 # zero_shot | few_shot | inverse
        inputs: [text]                  # task fields the prompt reads
        answer_choices: {negative: negative, positive: positive}
        metric: accuracy
        prompt: |
          {{ text }}
          Is this review positive or negative?
          OPTIONS:
          {{ options }}
        target: "{{ answer_choices[label] }}"

Besides the task's fields (instruct/tasks.py) a template may use `options` (the answer choices, or a
multiple-choice question's `choices`, as a "- " list), `answer_choices` (canonical label → word) and,
in few-shot templates, `exemplars` (a list of `shots` examples of the same task). Block tags
(`{% for %}`, `{% if %}`) take their own line's newline and indentation with them. Everything is checked
when a pack is loaded: a field the task does not have, or one the prompt uses without declaring it in
`inputs`, fails with the template's id and the field. Rendering runs in an immutable sandbox with no
loader and strict undefined values: a template can neither call unsafe attributes nor read files. It is
bounded too (instruct/sandbox.py): in CPU time, in the size of the values its operators and filters
make, and in what it writes, at most RENDER_CHARS plus RENDER_FIELD_FACTOR times its fields' text.

Verbalizers: in the shipped packs every template of a task and language (inverse ones included) renders
a label with the same word: sentiment_binary negative/positive (en), 负面/正面 (zh); sentiment_fine
"1".."5" (en), 一星..五星 (zh). A multiple-choice answer is always the text of the correct choice. A
prompt may describe the labels in other words, but targets and `options` use these, so that evaluation
by option ranking compares the same words on every template. Each pack's header comment names its words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from instructgpt.instruct.sandbox import BoundedSandbox, render_bounded
from instructgpt.instruct.tasks import FAMILIES, TASKS

KINDS = ("zero_shot", "few_shot", "inverse")
METRICS = ("accuracy", "rouge", "squad", "bleu")
BUILTINS = frozenset({"options", "answer_choices", "exemplars"})
_KEYS = {"id", "task", "kind", "inputs", "metric", "prompt", "target", "answer_choices", "shots"}
RENDER_CHARS = 100_000  # what a render may write besides RENDER_FIELD_FACTOR times the fields' text
RENDER_FIELD_FACTOR = 4


class TemplateError(ValueError):
    """A template pack or template is invalid, or a template failed to render; names the template."""


@dataclass(frozen=True)
class Template:
    id: str
    family: str
    lang: str
    task: str
    kind: str
    inputs: tuple[str, ...]
    metric: str
    prompt: str
    target: str
    answer_choices: Mapping[str, str] | None = None
    shots: int = 0
    pack: str = ""  # the file it was loaded from, for error messages

    @property
    def where(self) -> str:
        """The pack file and the template's id, as errors name them."""
        return f"{self.pack}: template {self.id}" if self.pack else self.id

    def applies_to(self, fields: Mapping[str, Any]) -> bool:
        """Whether an example has every field this template reads (optional fields may be absent)."""
        return all(fields.get(name) not in (None, "") for name in self.inputs)

    def render(
        self, fields: Mapping[str, Any], exemplars: Sequence[Mapping[str, Any]] = ()
    ) -> tuple[str, str]:
        """(prompt, target) for one example; few-shot templates need exactly `shots` exemplars."""
        if len(exemplars) != self.shots:
            raise TemplateError(f"{self.where}: needs {self.shots} exemplars, got {len(exemplars)}")
        fields, exemplars = _labels_as_text(fields), [_labels_as_text(e) for e in exemplars]
        context = {**fields, **self._builtins(fields), "exemplars": exemplars}
        limit = RENDER_CHARS + RENDER_FIELD_FACTOR * sum(map(_text_size, [fields, *exemplars]))
        try:
            prompt = render_bounded(_compiled(self.prompt), context, limit)
            return prompt.strip(), render_bounded(_compiled(self.target), context, limit).strip()
        except Exception as err:  # sandbox violations and limits, undefined values, bad filters
            raise TemplateError(f"{self.where}: cannot render: {type(err).__name__}: {err}") from err

    def _builtins(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        choices = list(self.answer_choices.values()) if self.answer_choices else fields.get("choices", [])
        return {
            "answer_choices": dict(self.answer_choices or {}),
            "options": "\n".join(f"- {c}" for c in choices),
        }


def _labels_as_text(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """Labels index `answer_choices`, whose keys are text: a label read as the number 4 means "4"."""
    return {**fields, "label": str(fields["label"])} if "label" in fields else fields


def _text_size(fields: Mapping[str, Any]) -> int:
    return sum(len(str(value)) for value in fields.values())


@lru_cache(maxsize=1)
def _env() -> Any:
    """The one sandbox of this process (instruct/sandbox.py)."""
    return BoundedSandbox()


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return _env().from_string(source)


# ---------------------------------------------------------------------------------------------- loading


def builtin_pack_dir() -> Path:
    """Where the packs shipped with instructgpt are installed."""
    return Path(str(resources.files("instructgpt.instruct") / "templates"))


def load_templates(paths: Iterable[str | Path] = ()) -> list[Template]:
    """Every template of the shipped packs plus the packs (files or folders of `*.yaml`) in `paths`."""
    files = sorted(builtin_pack_dir().glob("*.yaml"))
    for path in map(Path, paths):
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    templates: list[Template] = []
    origin: dict[str, Path] = {}
    for file in files:
        for template in load_pack(file):
            if template.id in origin:
                raise TemplateError(
                    f"{template.id}: template id used twice, in {origin[template.id]} and {file}"
                )
            origin[template.id] = file
            templates.append(template)
    return templates


def load_pack(path: str | Path) -> list[Template]:
    """The templates of one YAML pack, each validated (see the module docstring)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise TemplateError(f"{path}: cannot read template pack: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("templates"), list):
        raise TemplateError(f"{path}: a pack needs `family`, `lang` and a list of `templates`")
    family, lang = data.get("family"), data.get("lang")
    if family not in FAMILIES:
        raise TemplateError(f"{path}: family {family!r} is not one of {', '.join(FAMILIES)}")
    if not isinstance(lang, str) or not lang:
        raise TemplateError(f"{path}: `lang` must be a language code such as en or zh")
    return [_template(path, family, lang, i, raw) for i, raw in enumerate(data["templates"])]


def _template(path: Path, family: str, lang: str, index: int, raw: Any) -> Template:
    where = f"{path}: template {raw.get('id', index) if isinstance(raw, dict) else index}"
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: expected a mapping")
    if unknown := set(raw) - _KEYS:
        raise TemplateError(f"{where}: unknown keys {sorted(unknown)}; expected {sorted(_KEYS)}")
    for key in ("id", "task", "kind", "inputs", "metric", "prompt", "target"):
        if key not in raw:
            raise TemplateError(f"{where}: missing `{key}`")
    choices, inputs, shots = raw.get("answer_choices"), raw["inputs"], raw.get("shots", 0)
    if not isinstance(inputs, list) or not all(isinstance(name, str) for name in inputs):
        raise TemplateError(f"{where}: `inputs` must be a list of field names, got {inputs!r}")
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
        raise TemplateError(f"{where}: `shots` must be a whole number >= 0, got {shots!r}")
    if choices is not None and not isinstance(choices, dict):
        raise TemplateError(f"{where}: `answer_choices` must map labels to words, got {choices!r}")
    template = Template(
        id=str(raw["id"]),
        family=family,
        lang=lang,
        task=str(raw["task"]),
        kind=str(raw["kind"]),
        inputs=tuple(inputs),
        metric=str(raw["metric"]),
        prompt=str(raw["prompt"]),
        target=str(raw["target"]),
        answer_choices={str(k): str(v) for k, v in choices.items()} if choices is not None else None,
        shots=shots,
        pack=str(path),
    )
    validate(template, template.where)
    return template


def validate(template: Template, where: str) -> None:
    """Check a template against its task; raises TemplateError naming `where` and the problem."""
    task = TASKS.get(template.task)
    if task is None:
        raise TemplateError(f"{where}: unknown task {template.task!r}; expected one of {', '.join(TASKS)}")
    if task.family != template.family:
        raise TemplateError(
            f"{where}: task {task.name} belongs to family {task.family}, not {template.family}"
        )
    if template.kind not in KINDS or template.metric not in METRICS:
        raise TemplateError(f"{where}: kind must be one of {KINDS} and metric one of {METRICS}")
    if (template.kind == "few_shot") != (template.shots > 0):
        raise TemplateError(f"{where}: few_shot templates (and only they) need `shots` >= 1")
    for name in template.inputs:
        if name not in task.fields:
            raise TemplateError(
                f"{where}: field {name!r} is not a field of task {task.name} ({', '.join(task.fields)})"
            )
    _check_references(template, task.fields, where)
    _check_choices(template, task.labels, where)
    _trial_render(template, where)


def _check_references(template: Template, task_fields: tuple[str, ...], where: str) -> None:
    for part in ("prompt", "target"):
        for name in sorted(_variables(getattr(template, part), where) - BUILTINS):
            if name not in task_fields:
                raise TemplateError(
                    f"{where}: {part} uses field {name!r}, which task {template.task} does not have"
                )
            if part == "prompt" and name not in template.inputs:
                raise TemplateError(f"{where}: prompt uses field {name!r} but `inputs` does not declare it")


def _variables(source: str, where: str) -> set[str]:
    from jinja2 import TemplateSyntaxError, meta

    try:
        return set(meta.find_undeclared_variables(_env().parse(source)))
    except TemplateSyntaxError as err:
        raise TemplateError(f"{where}: Jinja syntax error on line {err.lineno}: {err.message}") from err


def _check_choices(template: Template, labels: tuple[str, ...], where: str) -> None:
    if labels and template.answer_choices is None:
        raise TemplateError(f"{where}: task {template.task} has labels, so `answer_choices` is required")
    if labels and template.answer_choices is not None and set(template.answer_choices) != set(labels):
        raise TemplateError(f"{where}: answer_choices must map exactly the labels {', '.join(labels)}")


def _trial_render(template: Template, where: str) -> None:
    """Render once with placeholder values, so sandbox violations and typos fail at load time."""
    sample = placeholder_fields(template.task)
    try:
        template.render(sample, [sample] * template.shots)
    except TemplateError as err:
        raise TemplateError(f"{where}: {str(err).removeprefix(template.where + ': ')}") from err


def placeholder_fields(task_name: str) -> dict[str, Any]:
    """A well-formed example of a task with placeholder values, used for trial renders."""
    task = TASKS[task_name]
    fields: dict[str, Any] = {name: f"<{name}>" for name in task.fields}
    fields.update(
        {name: [f"<{name} 1>", f"<{name} 2>"] for name in ("turns", "choices", "keywords") if name in fields}
    )
    if task.labels:
        fields["label"] = task.labels[-1]
    if "choices" in fields:
        fields["answer"] = fields["choices"][0]
    if "answer_start" in fields:
        fields["answer_start"] = 0
    return fields
