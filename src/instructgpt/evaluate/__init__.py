"""Evaluation: task metrics (accuracy, SQuAD/CMRC exact match and F1, ...), suites and reports."""
