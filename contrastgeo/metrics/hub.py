"""Publish the geolocation metric as a Hub Space, the way `evaluate`'s own metrics live on the Hub.

`evaluate.load("<user>/<space>")` downloads `<space>.py` from the Space, so the module is uploaded under the Space's
name, with its card (README.md, whose YAML configures the Space) and the widget `app.py` with its requirements.
"""

import shutil
import tempfile
from pathlib import Path

from datasets_scripts.hub import push_folder

METRIC_FOLDER = Path(__file__).resolve().parent / "geolocation"
SPACE_FILES = ("README.md", "app.py", "requirements.txt")


def push_metric(repo_id, private=False, revision=None, commit_message=None, token=None):
    """Create or update the Space `repo_id` with the metric; returns the URL of the commit.

    Raises ValueError for a bad repo id or when `HF_HUB_OFFLINE` forbids the network, before any upload."""
    with tempfile.TemporaryDirectory() as staging:
        staging = Path(staging)
        for name in SPACE_FILES:
            shutil.copy2(METRIC_FOLDER / name, staging / name)
        shutil.copy2(METRIC_FOLDER / "geolocation.py", staging / f"{repo_id.split('/')[-1]}.py")
        return push_folder(staging, repo_id, repo_type="space", space_sdk="gradio", private=private,
                           revision=revision, token=token,
                           commit_message=commit_message or "Upload the geolocation metric (ContrastGeo)")
