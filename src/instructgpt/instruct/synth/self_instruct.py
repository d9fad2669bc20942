"""`instructgpt synth self-instruct`: Self-Instruct bootstrapping (Wang et al. 2022) from seed tasks.

Each round sends `prompts_per_round` prompts, each listing `seed_examples` human-written seeds and
`generated_examples` instructions kept in earlier rounds (seeds fill in while there are fewer), shuffled
and numbered, and asking for `new_per_prompt` more. The numbered reply is parsed (parse.py) and every
new instruction meets the filters of filters.py; the first that objects drops it, and report.json counts
it under that filter's name (an instruction parsed after the target was reached is counted as
`over_target`), so generated = kept + the sum of `filtered`. Rounds stop at `target` kept instructions
or after `max_rounds`. Then each kept instruction is classified and given instances (instances.py), and
each instance becomes a Conversation (user: the instruction, then its input; assistant: the output),
unless it shares an n-gram with an evaluation file (`decontaminate`): it is then dropped, written to
rejects.jsonl and counted in the instances' `filtered` as `decontaminate` and in `decontaminated`.

Outputs in OUTDIR: `instructions.jsonl` (id, instruction, round, is_classification, instances),
`conversations.jsonl` (for `instructgpt sft`; `task` self_instruct, `source` synth:self-instruct),
`report.json`, `rejects.jsonl` (every dropped instruction with its filter and reason, and unreadable
seeds) and the answer cache `synth_cache.jsonl`: a re-run with the same settings reads every answer it
already has from there, so a killed run resumes where it stopped, without asking again.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from instructgpt.config import to_dict
from instructgpt.data.decontam import STAGE, Removal, load_decontaminator
from instructgpt.instruct.synth.backends import Generator, redacted
from instructgpt.instruct.synth.cache import CachedGenerator, synth_generator
from instructgpt.instruct.synth.config import SelfInstructConfig
from instructgpt.instruct.synth.filters import FILTERS, InstructionPool, InstructionRules
from instructgpt.instruct.synth.instances import INSTANCE_FILTERS, classify, generate_instances
from instructgpt.instruct.synth.parse import numbered_items
from instructgpt.instruct.synth.prompts import Instance, instruction_prompt, reply_text, to_request
from instructgpt.instruct.synth.seeds import Seed, read_seeds
from instructgpt.io import JsonlWriter, OnError, Rejects
from instructgpt.progress import counter, track
from instructgpt.records import Conversation, Message
from instructgpt.records import to_dict as record_dict
from instructgpt.reports.data import SelfInstructReport

SOURCE = "synth:self-instruct"
_CHUNK = 256  # instructions classified and given instances per batch of requests


@dataclass
class Kept:
    instruction: str
    round: int


@dataclass
class Tally:
    rounds: int = 0
    generated: int = 0
    filtered: Counter[str] = dataclasses.field(
        default_factory=lambda: Counter(dict.fromkeys((*FILTERS, "over_target"), 0))
    )


def run(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: SelfInstructConfig,
    on_error: OnError = "fail",
    *,
    backend: Generator | None = None,
) -> SelfInstructReport:
    """Bootstrap instructions from the seeds in `inputs` into `out_dir`; returns the report in report.json.

    `backend` (a test's scripted model) replaces the one the config names (the answers are cached all the
    same)."""
    started, out_dir = time.perf_counter(), Path(out_dir)
    check_config(config)
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    seeds = read_seeds(inputs, rejects)
    texts = [s.instruction for s in seeds]
    generator = synth_generator(config, out_dir, texts, backend)
    rules = InstructionRules(
        config.lang, config.min_words, config.max_words, tuple(config.blacklist), tuple(config.bad_starts)
    )
    pool = InstructionPool(rules, config.max_rouge, texts)
    kept, tally = bootstrap(seeds, pool, generator, config, rejects)
    index = load_decontaminator(config.decontaminate)
    instances = write_tasks(kept, seeds, generator, config, out_dir, Removal(index, rejects))
    rejects.close()
    seconds = round(time.perf_counter() - started, 3)
    return _report(inputs, seeds, kept, tally, instances, rejects, generator, config, seconds).write(out_dir)


def check_config(config: SelfInstructConfig) -> None:
    """Raise ValueError naming the first setting that cannot work."""
    checks = [
        (config.target >= 1, "target must be >= 1"),
        (config.prompts_per_round >= 1, "prompts_per_round must be >= 1"),
        (config.seed_examples >= 1, "seed_examples must be >= 1"),
        (config.generated_examples >= 0, "generated_examples must be >= 0"),
        (config.new_per_prompt >= 1, "new_per_prompt must be >= 1"),
        (0 < config.max_rouge <= 1, "max_rouge must be in (0, 1]"),
        (config.instances_per_task >= 1, "instances_per_task must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"synth self-instruct: {message}")


def bootstrap(
    seeds: Sequence[Seed],
    pool: InstructionPool,
    generator: Generator,
    config: SelfInstructConfig,
    rejects: Rejects,
) -> tuple[list[Kept], Tally]:
    """The rounds of instruction generation; returns the kept instructions and the counts."""
    rng = random.Random(config.seed)
    kept: list[Kept] = []
    tally = Tally()
    progress = counter("self-instruct", "instructions", config.target)
    while len(kept) < config.target and tally.rounds < config.max_rounds:
        tally.rounds += 1
        examples = [_examples(seeds, kept, rng, config) for _ in range(config.prompts_per_round)]
        prompts = [instruction_prompt(shown, config.new_per_prompt, config.lang) for shown in examples]
        stop = f"\n{len(examples[0]) + config.new_per_prompt + 1}."  # the item after the last asked for
        sampling = dataclasses.replace(
            config.sampling, seed=config.sampling.seed + tally.rounds, stop=[*config.sampling.stop, stop]
        )
        completions = generator.complete([to_request(p, config.prompt_style, sampling) for p in prompts])
        for j, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            reply = reply_text(prompt, config.prompt_style, completion)
            for text in numbered_items(reply, completion.truncated):
                _offer(text, f"round {tally.rounds}, prompt {j + 1}", pool, kept, tally, config, rejects)
        progress.update(min(len(kept), config.target) - progress.n)
    progress.close()
    return kept, tally


def _examples(
    seeds: Sequence[Seed], kept: list[Kept], rng: random.Random, config: SelfInstructConfig
) -> list[str]:
    """In-context instructions for one prompt: generated ones (while there are enough) and seeds, shuffled."""
    machine = [k.instruction for k in rng.sample(kept, min(config.generated_examples, len(kept)))]
    wanted = config.seed_examples + config.generated_examples - len(machine)
    human = [s.instruction for s in rng.sample(list(seeds), min(wanted, len(seeds)))]
    shown = human + machine
    rng.shuffle(shown)
    return shown


def _offer(
    text: str,
    where: str,
    pool: InstructionPool,
    kept: list[Kept],
    tally: Tally,
    config: SelfInstructConfig,
    rejects: Rejects,
) -> None:
    """Count one generated instruction, and keep it or record which filter dropped it."""
    tally.generated += 1
    verdict = ("over_target", "the target was reached") if len(kept) >= config.target else pool.offer(text)
    if verdict is None:
        kept.append(Kept(text, tally.rounds))
        return
    name, reason = verdict
    tally.filtered[name] += 1
    rejects.filtered(name, where, reason, {"instruction": text})


# ------------------------------------------------------------------------------------- instances


@dataclass
class InstanceTally:
    classification: int = 0
    decided_by: Counter[str] = dataclasses.field(default_factory=Counter)
    generated: int = 0
    kept: int = 0
    filtered: Counter[str] = dataclasses.field(
        default_factory=lambda: Counter(dict.fromkeys(INSTANCE_FILTERS, 0))
    )
    tasks_without_instances: int = 0


def write_tasks(
    kept: Sequence[Kept],
    seeds: Sequence[Seed],
    generator: Generator,
    config: SelfInstructConfig,
    out_dir: Path,
    removal: Removal,
) -> InstanceTally:
    """Classify the kept instructions, generate their instances, and write instructions.jsonl and
    conversations.jsonl (less the conversations `removal` drops), a chunk of instructions at a time."""
    tally = InstanceTally()
    asker = generator if config.classify == "ask" else None
    with (
        JsonlWriter(out_dir / "instructions.jsonl") as instructions,
        JsonlWriter(out_dir / "conversations.jsonl") as conversations,
    ):
        for start in track(range(0, len(kept), _CHUNK), "instances", "chunks"):
            chunk = kept[start : start + _CHUNK]
            texts = [k.instruction for k in chunk]
            style, sampling = config.prompt_style, config.instance_sampling
            flags, decided_by = classify(texts, seeds, asker, style, sampling, config.lang)
            found, dropped, parsed = generate_instances(
                texts, flags, seeds, generator, style, sampling, config.lang, config.instances_per_task
            )
            tally.decided_by.update(decided_by)
            tally.filtered.update(dropped)
            tally.generated += parsed
            for offset, (task, flag, instances) in enumerate(zip(chunk, flags, found, strict=True)):
                task_id = f"self-instruct-{start + offset:06d}"
                made = [
                    task_conversation(task_id, k, task.instruction, instance, flag, config.lang)
                    for k, instance in enumerate(instances)
                ]
                written = [c for c in made if not removal.drops(c)]
                row = {"id": task_id, "instruction": task.instruction, "round": task.round}
                instructions.write(row | {"is_classification": flag, "instances": len(written)})
                for conversation in written:
                    conversations.write(record_dict(conversation))
                if len(written) < len(made):
                    tally.filtered[STAGE] += len(made) - len(written)
                tally.classification += flag
                tally.kept += len(written)
                tally.tasks_without_instances += not written
    return tally


def task_conversation(
    task_id: str, k: int, instruction: str, instance: Instance, output_first: bool, lang: str
) -> Conversation:
    """One instance as a Conversation: the instruction and its input from the user, the output answered."""
    given, wanted = instance
    user = f"{instruction}\n\n{given}" if given.strip() else instruction
    template = "self_instruct/" + ("output_first" if output_first else "input_first")
    messages = [Message("user", user), Message("assistant", wanted)]
    return Conversation(f"{task_id}#{k}", messages, "self_instruct", template, lang, SOURCE)


# ------------------------------------------------------------------------------------- report


def _report(
    inputs: Sequence[str | Path],
    seeds: Sequence[Seed],
    kept: Sequence[Kept],
    tally: Tally,
    instances: InstanceTally,
    rejects: Rejects,
    generator: CachedGenerator,
    config: SelfInstructConfig,
    seconds: float,
) -> SelfInstructReport:
    stats = generator.stats()
    return SelfInstructReport(
        inputs=[str(p) for p in inputs],
        seeds=len(seeds),
        read_errors=rejects.counts["read_error"],
        rounds=tally.rounds,
        generated=tally.generated,
        kept=len(kept),
        filtered=dict(tally.filtered),
        kept_per_round={str(r): n for r, n in Counter(k.round for k in kept).items()},
        instances={
            "tasks": len(kept),
            "classification_tasks": instances.classification,
            "classified_by": dict(instances.decided_by),
            "generated": instances.generated,
            "kept": instances.kept,
            "filtered": dict(instances.filtered),
            "tasks_without_instances": instances.tasks_without_instances,
        },
        conversations=instances.kept,
        generator_calls=stats["backend_calls"],
        cache_hits=stats["cache_hits"],
        generator={"backend": generator.identity, **stats},
        config=redacted(to_dict(config)),
        seconds=seconds,
        decontaminated=instances.filtered[STAGE],
    )
