"""Model-generated instructions (`instructgpt synth`): Self-Instruct bootstrapping from seed tasks
(self_instruct.py) and instruction–response pairs grounded in raw documents (context.py).

Both talk to a `Generator` (backends.py): the local model, any OpenAI-compatible server (endpoint.py),
always behind the on-disk answer cache (cache.py). Parsing replies is parse.py's, the prompts are
prompts.py's, Self-Instruct's filters are filters.py's (with the ROUGE-L index of novelty.py), its seeds
seeds.py's and its instances instances.py's.
"""
