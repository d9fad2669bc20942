"""`instructgpt serve`: an OpenAI-compatible HTTP server for a trained model (chat completions and
completions, streamed or whole, the model list and a health check), on the standard library's HTTP server.

- protocol.py: request validation, sampling options, OpenAI's error objects;
- replies.py: the JSON of answers and stream chunks;
- batcher.py: the bounded request queue and the one thread that owns the model (continuous batching on
  generation.engine);
- service.py: from a request to a Job (model name, prompt ids, limits);
- handler.py: the HTTP layer: routes, the API key, JSON and SSE replies, the limits on clients;
- server.py: `Server` (start / close) and `run` (the foreground command).
"""

from instructgpt.serve.handler import HttpLimits
from instructgpt.serve.server import Server, default_model_name, run

__all__ = ["HttpLimits", "Server", "default_model_name", "run"]
