"""`instructgpt export`: a trained model out of the toolkit, into the formats other tools run.

- `source`: the model to export, loaded and merged (a full model folder, a GGUF file, or a PEFT adapter
  folder folded into its base).
- `hf`: a plain Hugging Face folder that transformers 4.x and 5.x both load.
- `gguf_vocab` and `gguf_file`: a GGUF file for llama.cpp and Ollama (tokenizer metadata; weights in
  llama.cpp's names and layout).
- `modelfile`: Ollama's Modelfile, its TEMPLATE translated from the chat template.
- `hub`: the upload to the Hugging Face Hub.
- `stage`: the stage's `run`, tying them together, and the GGUF round trip it reports.
"""
