"""Publish a folder to the Hugging Face Hub: a written dataset (Parquet splits + card), a trained model folder or
the geolocation metric's Space.

The folder `write_dataset` writes is already in the Hub's layout: the card's YAML `configs:` name the Parquet file
of each split, so the uploaded repository loads with `datasets.load_dataset("<user>/<name>")` as it does locally.
train.py's `--push-to-hub` uploads its output folder the same way (`push_folder`), as does `python -m
contrastgeo.metrics push` the metric. The endpoint is huggingface_hub's (`HF_ENDPOINT`, e.g. a private Hub), the
token its usual one (`HF_TOKEN` or `hf auth login`).
"""

import os
from pathlib import Path

UPLOADED_PATTERNS = ("*.parquet", "README.md")


def repo_id_problem(repo_id):
    """Why the Hub would refuse `repo_id` as a repository id ('user/name' or 'name'), or None when it would not."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        return str(error)
    return None


def check_can_push(repo_id):
    """Raise ValueError, before any work, for a repo id the Hub would refuse or when `HF_HUB_OFFLINE` forbids the
    network (rather than huggingface_hub's error from deep inside an upload)."""
    problem = repo_id_problem(repo_id)
    if problem:
        raise ValueError(f"repo_id {repo_id!r} is not a Hub repository id ('user/name' or 'name'): {problem}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ValueError("HF_HUB_OFFLINE is set: unset it (and check HF_ENDPOINT) to push to the Hub")


def push_folder(folder, repo_id, repo_type="model", private=False, revision=None, commit_message=None,
                allow_patterns=None, ignore_patterns=None, token=None, space_sdk=None):
    """Create the repository `repo_id` when needed and upload the folder (filtered by the patterns) in one commit.

    Returns the URL of the commit. `space_sdk` ("gradio", ...) is required for a Space (`repo_type="space"`)."""
    check_can_push(repo_id)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    # None leaves a new repository at the account's default visibility (and an existing one as it is).
    api.create_repo(repo_id, repo_type=repo_type, private=True if private else None, exist_ok=True,
                    space_sdk=space_sdk)
    commit = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, revision=revision,
        allow_patterns=allow_patterns, ignore_patterns=ignore_patterns,
        commit_message=commit_message or f"Upload {Path(folder).name} (ContrastGeo)",
    )
    return getattr(commit, "commit_url", str(commit))


def push_dataset_folder(folder, repo_id, private=False, revision=None, commit_message=None, token=None):
    """Upload a dataset folder written by `build` (its Parquet files and card) as the dataset repository `repo_id`.

    Returns the URL of the commit. Raises ValueError for a folder that is not a written dataset, a bad repo id and
    when `HF_HUB_OFFLINE` forbids the network."""
    folder = Path(folder)
    if not (folder / "README.md").is_file() or not any(folder.glob("*.parquet")):
        raise ValueError(f"{folder} is not a dataset folder written by `build`: it needs README.md and Parquet files")
    return push_folder(folder, repo_id, repo_type="dataset", private=private, revision=revision,
                       commit_message=commit_message or f"Upload {folder.name} (ContrastGeo datasets_scripts)",
                       allow_patterns=list(UPLOADED_PATTERNS), token=token)
