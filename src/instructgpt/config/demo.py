"""Config of the embedded demo's data stage (`demo-data`)."""

from __future__ import annotations

import dataclasses

from instructgpt.config.typed import at_least, option


@dataclasses.dataclass
class DemoDataConfig:
    """The embedded demo's inputs, written into a run folder (`demo-data` recipe stage)."""

    examples_per_family: int = option(
        400,
        "Labelled examples per task family and language (for SFT and eval).",
        at_least(1),
    )
    documents: int = option(300, "Generated documents per language (raw text for pretraining).", at_least(1))
    preference_examples: int = option(
        60,
        "Examples per family and language, apart from the above, turned into ranked comparisons.",
        at_least(0),
    )
    seed: int = option(0, "Seed of the generators.", at_least(0))
