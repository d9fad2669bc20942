"""`train.report_to`: a tiny SFT run logs its metrics to W&B (offline run files) and MLflow (a local
`file:` store), read back and matched against metrics.jsonl. Skipped when the package is absent
(`pip install -e .[trackers]`)."""

import json

import pytest

from instructgpt.config import SFTConfig, load_config
from instructgpt.metrics_log import read_metrics
from instructgpt.train import sft

BASE = ["train.threads=1", "model.max_length=48", "model.vocab_size=300", "train.batch_size=4",
        "train.steps=4", "train.log_every=1", "train.eval_every=2", "train.save_every=0"]  # fmt: skip


@pytest.fixture
def data(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus 1?"},
                {"role": "assistant", "content": f"{i} plus 1 is {i + 1}."},
            ]
        }
        for i in range(24)
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train(data, out, tracker):
    config = load_config(SFTConfig, overrides=[*BASE, f"train.report_to=[{tracker}]"])
    sft.run([data], out, config)
    return read_metrics(out / "metrics.jsonl")


# ------------------------------------------------------------------------------------------------ W&B


def wandb_records(run_file):
    """The protobuf Records of an offline run's `.wandb` file: wandb's LevelDB-style log (a 7-byte file
    header, then 32 KiB blocks of chunks, each `crc32, length (2 bytes, little-endian), type` + data;
    type 1 a whole record, 2/3/4 its first, middle and last parts)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, parts, records = run_file.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


def test_wandb_offline_run_holds_the_metric_history(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    rows = train(data, tmp_path / "out", "wandb")
    [run_file] = (tmp_path / "out" / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    history = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }
            history.append(
                {k: v for k, v in items.items() if not k.startswith("_")} | {"step": items["_step"]}
            )
    expected = [{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in rows]
    assert history == expected and [h["step"] for h in history] == [0, 1, 2, 3, 4]
    assert any(r.WhichOneof("record_type") == "exit" for r in records)  # the run was finished
    [config] = [r.run.config for r in records if r.WhichOneof("record_type") == "run"]
    assert json.loads({i.key: i.value_json for i in config.update}["train"])["steps"] == 4


# --------------------------------------------------------------------------------------------- MLflow


def test_mlflow_file_store_holds_the_metric_history(data, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 refuses a file store without it
    rows = train(data, tmp_path / "out", "mlflow")
    assert mlflow.active_run() is None  # the run was ended with the training run
    client = mlflow.MlflowClient(tracking_uri=uri)
    [run] = client.search_runs(experiment_ids=["0"])
    assert run.info.status == "FINISHED"
    losses = client.get_metric_history(run.info.run_id, "loss")
    train_rows = [r for r in rows if "loss" in r]
    assert len(losses) == len(train_rows) == 4
    assert [(m.step, m.value) for m in losses] == [(r["step"], r["loss"]) for r in train_rows]
    evals = client.get_metric_history(run.info.run_id, "eval_loss")
    assert [(m.step, m.value) for m in evals] == [
        (r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r
    ]
    saved = client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))
    with open(saved) as f:
        assert json.load(f)["train"]["steps"] == 4


def test_a_missing_tracker_is_a_clear_error(data, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ValueError, match=r"report_to wandb: the wandb package is not installed"):
        train(data, tmp_path / "out", "wandb")
