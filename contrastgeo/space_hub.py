"""Deploy the demo (`space/`) as a Hugging Face Space that serves a model from the Hub.

The Space gets the app's files only; the model and its code come from the model repository named by the Space
variable `CONTRASTGEO_MODEL`, which the app reads from its environment (`space/app.py --model` defaults to it).
"""

from pathlib import Path

SPACE_DIR = Path(__file__).resolve().parents[1] / "space"
SPACE_FILES = ("README.md", "app.py", "map_svg.py", "places_csv.py", "requirements.txt")
MODEL_VARIABLE = "CONTRASTGEO_MODEL"


def push_space(repo_id, model_id, private=False, space_dir=None, token=None):
    """Create or update the Gradio Space `repo_id` with the demo and point it at the model repository `model_id`.

    Returns the URL of the commit. Raises ValueError, before any upload, for a bad repo or model id, a Space folder
    without the app's files (an install without the repository's `space/`) and when `HF_HUB_OFFLINE` is set."""
    from huggingface_hub import HfApi

    from datasets_scripts.hub import push_folder, repo_id_problem

    space_dir = Path(space_dir or SPACE_DIR)
    missing = [name for name in SPACE_FILES if not (space_dir / name).is_file()]
    if missing:
        raise ValueError(f"{space_dir} lacks the Space's files {missing}: pass the demo's folder (space/ of a "
                         "clone of the repository)")
    problem = repo_id_problem(model_id)
    if problem:
        raise ValueError(f"--model {model_id!r} is not a Hub repository id ('user/name'): the Space loads its "
                         f"model from the Hub, so push the model first (train.py --push-to-hub): {problem}")
    url = push_folder(space_dir, repo_id, repo_type="space", space_sdk="gradio", private=private, token=token,
                      allow_patterns=list(SPACE_FILES), commit_message=f"Deploy the ContrastGeo demo for {model_id}")
    HfApi(token=token).add_space_variable(repo_id, MODEL_VARIABLE, model_id,
                                          description="the ContrastGeo model the demo serves")
    return url
