"""Publish a written dataset folder (Parquet splits + README.md card) as a Hugging Face Hub dataset repository.

The folder `write_dataset` writes is already in the Hub's layout: the card's YAML `configs:` name the Parquet file
of each split, so the uploaded repository loads with `datasets.load_dataset("<user>/<name>")` as it does locally.
The endpoint is huggingface_hub's (`HF_ENDPOINT`, e.g. a private Hub), the token its usual one (`HF_TOKEN` or
`huggingface-cli login`).
"""

import os
from pathlib import Path

UPLOADED_PATTERNS = ("*.parquet", "README.md")


def push_dataset_folder(folder, repo_id, private=False, revision=None, commit_message=None, token=None):
    """Create the dataset repository `repo_id` when needed and upload the folder's Parquet files and card.

    Returns the URL of the commit. Raises ValueError for a folder that is not a written dataset and when
    `HF_HUB_OFFLINE` forbids the network (rather than huggingface_hub's error from deep inside the upload).
    """
    folder = Path(folder)
    if not (folder / "README.md").is_file() or not any(folder.glob("*.parquet")):
        raise ValueError(f"{folder} is not a dataset folder written by `build`: it needs README.md and Parquet files")
    if not isinstance(repo_id, str) or repo_id.count("/") > 1 or not repo_id.strip("/"):
        raise ValueError(f"repo_id must look like 'user/name' (or 'name'), got {repo_id!r}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ValueError("HF_HUB_OFFLINE is set: unset it (and check HF_ENDPOINT) to push to the Hub")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder), repo_id=repo_id, repo_type="dataset", revision=revision,
        allow_patterns=list(UPLOADED_PATTERNS),
        commit_message=commit_message or f"Upload {folder.name} (ContrastGeo datasets_scripts)",
    )
    return getattr(commit, "commit_url", str(commit))
