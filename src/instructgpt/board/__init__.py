"""`instructgpt board RUNS_DIR`: a local page to watch and compare runs.

`runs` finds the runs in a folder (recipe run folders written by `instructgpt run`, and single stage
folders holding a stage report) and each stage's status; `series` reads a stage's metrics.jsonl
incrementally (by byte offset) into the curves the page draws; `compare` gathers two or more runs' eval
tables and curves.
"""
