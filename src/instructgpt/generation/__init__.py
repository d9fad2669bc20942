"""Text generation from a causal LM. `engine` owns continuous batching (requests join and leave a running
batch, per-request options and seeds) over `slots`' preallocated KV cache; `sampling` owns the pure
sampling math and `generate` (a list of prompts run on the engine), the sampler every stage uses; `stream`
turns each row's tokens into final text with stop strings; `stage` is the `instructgpt generate` stage
(files in, answers out); `chat` is the terminal chat (`instructgpt chat`).
"""
