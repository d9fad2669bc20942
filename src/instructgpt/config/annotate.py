"""Config of `instructgpt annotate`: where the answers come from, who labels, and the labelling server."""

from __future__ import annotations

import dataclasses

from instructgpt.config.common import SamplingOptions
from instructgpt.config.typed import at_least, between, option


@dataclasses.dataclass
class AnnotateConfig:
    """People rank K answers per prompt (`instructgpt annotate PROMPTS -o OUT`).

    Answers come from the input file itself (Comparison records, with or without a ranking, or any
    preference format the readers know), or are sampled, `k` per prompt, from the `models` named.
    """

    models: list[str] = option(
        [],
        "Models answering each prompt, as `name=path` (or a path); empty: the answers are in the input "
        "file. The names never reach the page.",
    )
    k: int = option(4, "Answers sampled per prompt, spread over `models` in turn.", at_least(2))
    sampling: SamplingOptions = option(SamplingOptions(temperature=1.0, top_p=0.95), "")
    seed: int = option(0, "Seed of the order each item's answers are shown in.")
    annotators: list[str] = option([], "Names allowed to label; empty: any name.")
    double_share: float = option(
        0.1, "Share of items given to two annotators (for the agreement statistics).", between(0.0, 1.0)
    )
    target: int = option(
        0,
        "Stop once this many labels stand and write annotate_report.json (a recipe waits for them); "
        "0: serve until Ctrl-C.",
        at_least(0),
    )
    host: str = option(
        "127.0.0.1",
        "Address to listen on; any other than 127.0.0.1 needs a `token`.",
        decides_outputs=False,
    )
    port: int = option(
        8765, "TCP port (0: any free port; the address is printed).", between(0, 65535), decides_outputs=False
    )
    token: str = option(
        "",
        "Requests must carry `?token=` or `Authorization: Bearer TOKEN`; empty: no token needed.",
        decides_outputs=False,
    )
