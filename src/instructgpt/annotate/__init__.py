"""`instructgpt annotate`: people rank K answers per prompt, as InstructGPT's labellers did.

`items` builds what is labelled (a prompt and its answers, shown in a seeded shuffled order),
`store` keeps the labels (an append-only, fsynced `labels.jsonl` that a restart reads back), `agreement`
measures how far two annotators of one item agree, and `export` writes `comparisons.jsonl` for
`reward` and `dpo`.
"""
