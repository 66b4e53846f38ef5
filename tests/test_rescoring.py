"""Rescoring saved models with other place-prior weights and the weight fitted on unlabeled posts
(contrastgeo/benchmarking/rescoring.py and its script)."""

import json

import numpy as np
import pytest
import torch

from contrastgeo.benchmarking import runner as runner_module
from contrastgeo.benchmarking.rescoring import PRIOR_WEIGHT_GRID, fit_prior_weight, rescore_place_prior
from contrastgeo.benchmarking.runner import TaskData
from modeling_contrastgeo import ContrastGeoModel
from modeling_contrastgeo.place_prior import log_place_prior
from tests.benchmark_scripts import load_benchmark_script
from tests.tiny_models import SWISS_PLACES, make_tiny_encoder, synthetic_swiss_task


@pytest.fixture(scope="module")
def task_data():
    return TaskData.from_task("synthetic", synthetic_swiss_task())


def _top1(model, data, place_prior):
    predictions = model.geolocate(data.query_texts, places=data.places, top_k=1, place_prior=place_prior)
    return float(np.mean([row[0]["name"] == SWISS_PLACES[label]["name"]
                          for row, label in zip(predictions, data.query_labels)]))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_path, task_data):
    """A tiny model saved as train.py saves one: config, training_config.json and eval_results.json."""
    encoder = make_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"), minilm_path)
    torch.manual_seed(0)
    model = ContrastGeoModel.from_text_encoder(encoder, places=task_data.places, projection_dim=16,
                                               place_prior="population")
    model.config.probability_temperature = 0.05  # sharp enough for the prior to move only some predictions
    folder = tmp_path_factory.mktemp("saved")
    model.save_pretrained(folder)
    (folder / "training_config.json").write_text(json.dumps({"data": {"task": "synthetic", "shots": 4, "seed": 0}}))
    (folder / "eval_results.json").write_text(json.dumps({"top1": _top1(model, task_data, None)}))
    return folder, model


def test_each_weight_scores_as_geolocate_does_and_the_own_weight_reproduces_eval_results(saved_model, task_data):
    folder, model = saved_model
    row = rescore_place_prior(folder, [0, 1.0, 3.0], task_data)
    assert (row["task"], row["k"], row["seed"], row["saved_weight"]) == ("synthetic", 4, 0, 1.0)
    assert row["metrics"][0]["top1"] == pytest.approx(_top1(model, task_data, "none"))
    assert row["metrics"][1.0]["top1"] == pytest.approx(_top1(model, task_data, "population"))
    assert row["rescored_top1"] == pytest.approx(row["saved_top1"])
    model.config.place_prior_weight = 3.0
    try:
        assert row["metrics"][3.0]["top1"] == pytest.approx(_top1(model, task_data, "population"))
    finally:
        model.config.place_prior_weight = 1.0
    assert row["saved_temperature"] == 0.05
    model.config.probability_temperature = 1.0  # as --calibration none saves it
    try:
        assert row["metrics_temperature_1"][1.0]["top1"] == pytest.approx(_top1(model, task_data, "population"))
        assert row["metrics_temperature_1"][1.0]["top1"] != pytest.approx(row["metrics"][1.0]["top1"])
    finally:
        model.config.probability_temperature = 0.05
    logits, _ = model.predict_logits(task_data.query_texts, places=task_data.places)
    fitted = fit_prior_weight(logits.double().numpy() / 0.05, log_place_prior(task_data.places))
    assert row["fitted_weight"] == fitted
    model.config.place_prior_weight = row["fitted_weight"]
    try:
        assert row["metrics_fitted_weight"]["top1"] == pytest.approx(_top1(model, task_data, "population"))
    finally:
        model.config.place_prior_weight = 1.0
    # a prior heavy enough sends every post to the most populous place (Zürich), a quarter of the query posts
    assert rescore_place_prior(folder, [50.0], task_data)["metrics"][50.0]["top1"] == pytest.approx(0.25)
    most_populous = task_data.places[int(np.argmax(log_place_prior(task_data.places)))]["name"]
    model.config.place_prior_weight = 50.0
    try:
        predictions = model.geolocate(task_data.query_texts, places=task_data.places, top_k=1)
    finally:
        model.config.place_prior_weight = 1.0
    assert most_populous.startswith("Zürich") and {row[0]["name"] for row in predictions} == {most_populous}


def test_bad_models_and_weights_are_named(saved_model, task_data, tmp_path):
    folder, _ = saved_model
    with pytest.raises(ValueError, match="place_prior_weight must be a finite number >= 0"):
        rescore_place_prior(folder, [-1], task_data)
    with pytest.raises(ValueError, match="no training_config.json"):
        rescore_place_prior(tmp_path, [1], task_data)
    with pytest.raises(ValueError, match="trained on task 'synthetic', not 'other'"):
        rescore_place_prior(folder, [1], TaskData.from_task("other", synthetic_swiss_task()))
    (tmp_path / "training_config.json").write_text(json.dumps({"data": {"task": None}}))
    with pytest.raises(ValueError, match="trained on user files"):
        rescore_place_prior(tmp_path, [1], task_data)


def test_script_writes_the_table_and_fails_when_eval_results_disagree(saved_model, task_data, tmp_path, monkeypatch,
                                                                      capsys):
    script = load_benchmark_script("rescore_place_prior")
    monkeypatch.setattr(runner_module, "load_task_data", lambda name, raw_dir=None: task_data)
    folder, _ = saved_model
    report, output = tmp_path / "report.md", tmp_path / "rows.json"
    assert script.main([str(folder), "--weights", "0", "1", "--report", str(report), "--output", str(output)]) == 0
    table = capsys.readouterr().out
    assert "| task | K | seed | w=0 | w=1 | fitted on the query posts: w, top-1 / km |" in table
    assert "| synthetic | 4 | 0 |" in table
    assert table.strip() in report.read_text() and "at commit" in report.read_text()
    assert "At temperature 1" in report.read_text()  # the model's saved temperature is 0.05
    assert json.loads(output.read_text())[0]["task"] == "synthetic"

    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for path in folder.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    saved_top1 = json.loads((folder / "eval_results.json").read_text())["top1"]
    (tampered / "eval_results.json").write_text(json.dumps({"top1": 0.0 if saved_top1 > 0.1 else 1.0}))
    assert script.main([str(tampered), "--weights", "1"]) == 1
    assert "check failed" in capsys.readouterr().err


def sampled_posts(prior_weight, num_posts=20000, signal=3.0, seed=0):
    """Scores of posts drawn from places with probability proportional to population ** prior_weight: each post's
    score vector is signal at its place plus unit Gaussian noise, whose exact log-likelihood is signal * score."""
    rng = np.random.default_rng(seed)
    populations = np.array([5e6, 1e6, 3e5, 1e5, 3e4, 1e4])
    log_prior = np.log(populations) - np.log(populations.sum())
    draw = populations ** prior_weight
    places = rng.choice(len(populations), size=num_posts, p=draw / draw.sum())
    noisy = signal * np.eye(len(populations))[places] + rng.standard_normal((num_posts, len(populations)))
    scores = signal * noisy
    return scores, log_prior


@pytest.mark.parametrize("prior_weight", [0.0, 0.5, 1.0, 2.0])
def test_the_fitted_weight_is_the_one_the_posts_were_drawn_with(prior_weight):
    scores, log_prior = sampled_posts(prior_weight)
    assert fit_prior_weight(scores, log_prior) == pytest.approx(prior_weight, abs=0.15)


def test_the_fitted_weight_is_a_candidate_and_posts_without_signal_give_the_smallest():
    scores, log_prior = sampled_posts(1.0, num_posts=500)
    assert fit_prior_weight(scores, log_prior) in PRIOR_WEIGHT_GRID
    assert fit_prior_weight(scores, log_prior, weights=[0.25, 4.0]) in (0.25, 4.0)
    # Equal scores for every place: every exponent explains the posts equally well.
    assert fit_prior_weight(np.zeros((50, 6)), log_prior) == 0.0


@pytest.mark.parametrize("scores, log_prior, weights, message", [
    (np.zeros((0, 3)), np.zeros(3), None, r"non-empty \(num_posts, num_places\) matrix, got shape \(0, 3\)"),
    (np.zeros(3), np.zeros(3), None, r"got shape \(3,\)"),
    (np.zeros((2, 3)), np.zeros(4), None, r"log_prior must have shape \(3,\)"),
    (np.array([[0.0, np.nan, 0.0]]), np.zeros(3), None, r"log_likelihoods\[0, 1\] is nan"),
    (np.zeros((1, 3)), np.array([0.0, -np.inf, 0.0]), None, r"log_prior\[1\] is -inf"),
    (np.zeros((1, 3)), np.zeros(3), [-1.0], "place_prior_weight must be a finite number >= 0"),
    (np.zeros((1, 3)), np.zeros(3), [], "at least one candidate"),
])
def test_bad_fitting_input_is_named(scores, log_prior, weights, message):
    with pytest.raises(ValueError, match=message):
        fit_prior_weight(scores, log_prior, **({} if weights is None else {"weights": weights}))
