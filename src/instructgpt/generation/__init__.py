"""Text generation from a causal LM. `sampling` owns the sampler every stage uses (`generate`: batched,
KV-cached, seeded, streaming) and its pure sampling math; `stream` turns each row's tokens into final text
with stop strings; `stage` is the `instructgpt generate` stage (files in, answers out); `chat` is the
terminal chat (`instructgpt chat`).
"""
