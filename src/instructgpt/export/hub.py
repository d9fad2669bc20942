"""push_to_hub: the exported files uploaded to a Hugging Face Hub model repo (created when absent), with
huggingface_hub; any failure (offline, no token, no network, a refused repo id) is one ValueError line."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

# The HTTP client's own error base (the HTTPError of the httpx this huggingface_hub is built on): a refused
# connection raises one, and it is no OSError.
CLIENT_ERRORS = tuple(c for c in HfHubHTTPError.__mro__[1:] if c.__name__ == "HTTPError")


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
    except (OSError, ValueError, *CLIENT_ERRORS) as err:  # hub errors are OSError (HfHubHTTPError...)
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise ValueError(
            f"push_to_hub={repo_id}: the upload to the Hugging Face Hub failed: {lines[0]} (the exported "
            f"files are in {folder})"
        ) from err
    return str(url)
