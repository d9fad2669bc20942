"""Training stages: one module per stage (pretrain, sft, reward, ppo, dpo, finetune_task), each owning its
data, loss and loop. A stage may keep a part in a sibling module of its own, imported by it alone:
`rollout.py` (PPO's experience), `dpo_data.py` (DPO's pairs), `task_heads.py` and `encoder_features.py`
(finetune-task's heads and encoder inputs).

What the stages share: `run.py` (the prologue and epilogue of a run: rejects, resume, optimizer, loop
state, metrics, checkpoints when due, saving), `loop.py` (loop state, data order, the NaN/inf
guard), `optim.py` (AdamW and the lr schedule), `rng.py` (seeds, RNG states), `progress.py` (progress bar,
metrics lines, plots), `checkpoint.py` (atomic, resumable checkpoints) and `starting.py` (the model a
tuning stage starts from, and what its resume must keep); the processes and collectives
are in `instructgpt.distributed`, metrics.jsonl in `instructgpt.metrics_log`.
Importing this package imports nothing heavy; the stage modules import torch and transformers.
"""
