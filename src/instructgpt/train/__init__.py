"""Training stages: one module per stage (pretrain, sft, reward, ppo, dpo), each owning its loop.

What the loops share lives in `loop.py` (seeding, optimizer, schedule, data order, gradient sync,
clipping, the non-finite guard, metrics, progress) and `checkpoint.py` (atomic, resumable checkpoints).
Importing this package imports nothing heavy; the stage modules import torch and transformers.
"""
