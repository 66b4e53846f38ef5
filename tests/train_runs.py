"""Shared by the train.py test modules: a tiny run's data and encoders, and train.py called in this process.

Runs use a tiny BERT (hidden 32, 2 layers) with the real MiniLM tokenizer, and CSV files cut from the vendored
vardial-ch task (6 places x 6 pool posts, 6 x 4 query posts), so a run takes seconds of training. A test module
imports the fixtures it uses (`tiny`, and `one_torch_thread`, which applies to the whole module once imported).
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tests.tiny_models import TRAINING_BERT, make_tiny_encoder, make_tiny_posts

METRIC_KEYS = {"top1", "top5", "macro_acc", "acc@1km", "acc@25km", "acc@161km", "acc@200km", "acc@750km",
               "acc@2500km", "mean_km", "median_km"}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine spinning threads cost seconds a step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, minilm_path):
    folder = tmp_path_factory.mktemp("tiny")
    files = make_tiny_posts(folder)
    files["encoder"] = make_tiny_encoder(folder / "encoder", minilm_path, **TRAINING_BERT)
    dropout = {**TRAINING_BERT, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    files["dropout_encoder"] = make_tiny_encoder(folder / "dropout_encoder", minilm_path, **dropout)
    rng = np.random.default_rng(0)
    pool = pd.read_csv(files["pool"])
    files["csp"] = folder / "csp.csv"
    pd.DataFrame({"text": pool["text"], "latitude": rng.uniform(-60, 60, len(pool)),
                  "longitude": rng.uniform(-170, 170, len(pool))}).to_csv(files["csp"], index=False)
    prior = pd.DataFrame({"label": rng.choice(["fir", "oak", "pine"], 40), "latitude": rng.uniform(-60, 60, 40),
                          "longitude": rng.uniform(-170, 170, 40)})
    files["prior_train"], files["prior_eval"] = folder / "prior_train.csv", folder / "prior_eval.csv"
    prior.iloc[:30].to_csv(files["prior_train"], index=False)
    prior.iloc[30:].to_csv(files["prior_eval"], index=False)
    return files


def reset_accelerate_state():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def train(argv):
    """`train.py argv` in this process (a fresh Accelerate state per run)."""
    from contrastgeo.training import main

    reset_accelerate_state()
    return main([str(arg) for arg in argv])


def geolocation_argv(tiny, output_dir, *extra):
    return ["--train-file", tiny["pool"], "--eval-file", tiny["query"], "--shots", 4, "--seed", 0,
            "--output-dir", output_dir, "--model-name-or-path", tiny["encoder"], "--batch-size", 8,
            "--max-train-steps", 4, "--logging-steps", 1, *extra]


COORDINATE_CONFIG = ["--model-config", "location_num_scales=4", "location_hidden_size=16",
                     "csp_num_random_locations=8"]


def log_history(output_dir):
    return [json.loads(line) for line in (output_dir / "log_history.jsonl").read_text().splitlines()]


def load_saved(output_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(output_dir, trust_remote_code=True)


def reevaluated_top1(model, query_path):
    query = pd.read_csv(query_path)
    names = [place["name"] for place in model.config.places]
    probabilities, _ = model.predict_scores(query["text"].tolist())
    predicted = probabilities.argmax(-1).numpy()
    return float(np.mean(predicted == np.array([names.index(label) for label in query["label"]])))
