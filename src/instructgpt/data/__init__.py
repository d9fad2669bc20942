"""Data preparation: cleaning, language id, quality filters, dedupe, decontamination, PII, segmentation."""
