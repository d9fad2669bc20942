"""instructgpt: the InstructGPT method end to end, from raw text to an aligned, served model."""

__version__ = "0.1.0"
