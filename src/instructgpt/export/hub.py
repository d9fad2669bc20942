"""push_to_hub: the exported files uploaded to a Hugging Face Hub model repo (created when absent), with
huggingface_hub; any failure (offline, no token, no network, a refused repo id) is one ValueError line."""

from __future__ import annotations

from pathlib import Path

import httpx
from huggingface_hub import HfApi


def push(folder: Path, files: list[str], repo_id: str, private: bool) -> str:
    """Upload `files` (names inside `folder`) to the model repo `repo_id`; returns the repo's URL."""
    try:
        api = HfApi()
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            allow_patterns=files,
            commit_message="Upload a model exported with instructgpt",
        )
    except (OSError, ValueError, httpx.HTTPError) as err:  # hub errors are OSError (HfHubHTTPError...)
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise ValueError(
            f"push_to_hub={repo_id}: the upload to the Hugging Face Hub failed: {lines[0]} (the exported "
            f"files are in {folder})"
        ) from err
    return str(url)
