"""train.py with the location objectives (csp, location-prior) end to end on tiny data, a CSP encoder as the start
of a ContrastGeo model, and every objective's trainable parameters getting a gradient (what DDP needs).
"""

import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.train_runs import (COORDINATE_CONFIG, geolocation_argv, load_saved, log_history,  # noqa: F401 (fixtures)
                              one_torch_thread, reset_accelerate_state, tiny, train)


def test_csp_run_then_contrastgeo_initialised_from_it(tiny, tmp_path):
    csp_dir = tmp_path / "csp"
    results = train(["--objective", "csp", "--train-file", tiny["csp"], "--output-dir", csp_dir,
                     "--model-name-or-path", tiny["encoder"], "--batch-size", 8, "--max-train-steps", 3,
                     "--logging-steps", 1, "--eval-fraction", 0.25, *COORDINATE_CONFIG])
    assert {"loss_in_batch", "loss_random_location", "retrieval_top1"} <= set(results)
    assert results["num_examples"] == 9  # 25% of 36 rows held out
    card = (csp_dir / "README.md").read_text(encoding="utf-8")
    assert "model.get_location_features(place_latlon=" in card and "model-index" not in card
    assert load_saved(csp_dir).get_location_features(place_latlon=torch.tensor([[47.37, 8.54]])).shape[0] == 1
    history = log_history(csp_dir)
    assert all(math.isfinite(record["loss_dropout_view"]) for record in history)

    from contrastgeo.training import parse_args
    from contrastgeo.training.config import hyperparameters
    from contrastgeo.training.modeling import build_model

    def config_for(*extra):
        return hyperparameters(parse_args(geolocation_argv(tiny, tmp_path / "x", "--init-location-encoder", csp_dir,
                                                           *extra)))

    places = [{"name": "A", "latitude": 1.0, "longitude": 2.0}, {"name": "B", "latitude": 3.0, "longitude": 4.0}]
    model = build_model(config_for("--location-mode", "hybrid", *COORDINATE_CONFIG), places=places)
    saved = load_file(str(csp_dir / "model.safetensors"))
    for name, tensor in model.location_encoder.state_dict().items():
        torch.testing.assert_close(tensor, saved[f"location_encoder.{name}"])
    with pytest.raises(ValueError, match="location_num_scales: saved 4, this run 8"):
        build_model(config_for("--location-mode", "hybrid", "--model-config", "location_num_scales=8",
                               "location_hidden_size=16"), places=places)
    with pytest.raises(ValueError, match="needs a coordinate encoder"):
        build_model(config_for(), places=places)


def test_init_location_encoder_names_a_source_without_a_coordinate_encoder(tiny, tmp_path):
    """A folder with no coordinate encoder to copy says so, rather than asking for settings that would not help; a
    setting given as its default matches a source that left it unset."""
    from modeling_contrastgeo import ContrastGeoModel

    from contrastgeo.training import parse_args
    from contrastgeo.training.config import hyperparameters
    from contrastgeo.training.modeling import build_model

    places = [{"name": "A", "latitude": 1.0, "longitude": 2.0}, {"name": "B", "latitude": 3.0, "longitude": 4.0}]

    def build(source, *model_config):
        argv = geolocation_argv(tiny, tmp_path / "x", "--init-location-encoder", source, "--location-mode", "hybrid",
                                *COORDINATE_CONFIG, *model_config)
        return build_model(hyperparameters(parse_args(argv)), places=places)

    ContrastGeoModel.from_text_encoder(str(tiny["encoder"]), location_mode="prompt",
                                       projection_dim=None).save_pretrained(tmp_path / "prompt")
    with pytest.raises(ValueError, match="no coordinate encoder to copy \\(location_mode='prompt'\\)"):
        build(tmp_path / "prompt")
    with pytest.raises(ValueError, match="a 'bert' model, not a saved ContrastGeo model"):
        build(tiny["encoder"])
    ContrastGeoModel.from_text_encoder(str(tiny["encoder"]), location_mode="coordinates", projection_dim=None,
                                       location_num_scales=4, location_hidden_size=16).save_pretrained(tmp_path / "csp")
    model = build(tmp_path / "csp", "location_min_radius=0.5")  # sphereM's default minimum radius
    assert model.config.location_min_radius == 0.5


def test_a_location_prior_of_one_class_is_refused(tiny, tmp_path):
    from contrastgeo.training import parse_args
    from contrastgeo.training.data import load_location_prior_data

    rows = pd.read_csv(tiny["prior_train"]).assign(label="fir")
    rows.to_csv(tmp_path / "one_class.csv", index=False)
    args = parse_args(["--objective", "location-prior", "--train-file", tmp_path / "one_class.csv", "--eval-file",
                       tiny["prior_eval"], "--output-dir", tmp_path / "out"])
    with pytest.raises(ValueError, match="one_class.csv: one class \\('fir'\\) for every row"):
        load_location_prior_data(args)


def test_location_prior_run(tiny, tmp_path):
    results = train(["--objective", "location-prior", "--train-file", tiny["prior_train"], "--eval-file",
                     tiny["prior_eval"], "--output-dir", tmp_path, "--model-name-or-path", tiny["encoder"],
                     "--batch-size", 8, "--max-train-steps", 3, *COORDINATE_CONFIG])
    assert results["num_examples"] == 10
    model = load_saved(tmp_path)
    assert model.config.location_prior_class_names == ["fir", "oak", "pine"]
    # The reported top-1 is the saved model's: its prior logits at the eval points, against their labels.
    evaluation = pd.read_csv(tiny["prior_eval"])
    with torch.no_grad():
        logits = model.location_prior_logits(torch.tensor(evaluation[["latitude", "longitude"]].to_numpy(),
                                                          dtype=torch.float32))
    predicted = [model.config.location_prior_class_names[i] for i in logits.argmax(-1).tolist()]
    assert results["top1"] == pytest.approx((pd.Series(predicted) == evaluation["label"]).mean())


def test_location_prior_holds_out_an_explicit_eval_fraction_and_nothing_by_default(tiny, tmp_path):
    import json

    common = ["--objective", "location-prior", "--train-file", tiny["prior_train"], "--model-name-or-path",
              tiny["encoder"], "--batch-size", 8, "--max-train-steps", 2, *COORDINATE_CONFIG]
    results = train([*common, "--eval-fraction", 0.2, "--output-dir", tmp_path / "held_out"])
    assert results["num_examples"] == 6  # 20% of 30 rows
    recorded = json.loads((tmp_path / "held_out" / "training_config.json").read_text())
    assert recorded["data"]["eval_fraction"] == 0.2
    assert (recorded["data"]["num_train_rows"], recorded["data"]["num_eval_rows"]) == (24, 6)

    # Without the flag the location prior trains on every row, as it always did, and records that it held none out.
    assert train([*common, "--output-dir", tmp_path / "default"]) == {}
    recorded = json.loads((tmp_path / "default" / "training_config.json").read_text())
    assert recorded["hyperparameters"]["eval_fraction"] == 0.0 and "eval_fraction" not in recorded["data"]
    assert recorded["data"]["num_train_rows"] == 30
    with pytest.raises(ValueError, match="--eval-steps 1 evaluates during training, but this run has no evaluation"):
        train([*common, "--eval-steps", 1, "--output-dir", tmp_path / "eval_steps"])


def test_location_prior_eval_labels_unknown_to_training_name_their_line(tiny, tmp_path):
    from contrastgeo.training import parse_args
    from contrastgeo.training.data import load_location_prior_data

    evaluation = pd.read_csv(tiny["prior_eval"])
    evaluation.loc[[2, 6], "label"] = "baobab"
    evaluation.to_csv(tmp_path / "eval.csv", index=False)
    args = parse_args(["--objective", "location-prior", "--train-file", tiny["prior_train"], "--eval-file",
                       tmp_path / "eval.csv", "--output-dir", tmp_path / "out"])
    with pytest.raises(ValueError, match="2 row\\(s\\) .* not training labels, first at line 4: \\['baobab'\\]"):
        load_location_prior_data(args)


@pytest.mark.parametrize("objective", ["contrastgeo", "classifier", "csp", "location-prior"])
def test_every_trainable_parameter_gets_a_gradient(tiny, tmp_path, objective):
    """DistributedDataParallel fails on trainable parameters without gradients: objectives freeze what they skip."""
    from accelerate import Accelerator

    from contrastgeo.training import parse_args
    from contrastgeo.training.config import hyperparameters
    from contrastgeo.training.modeling import build_model, set_trainable, trainable_parts
    from contrastgeo.training.objectives import ClassifierStep, ContrastGeoStep, CSPStep, LocationPriorStep

    argv = geolocation_argv(tiny, tmp_path, "--objective", objective, "--shots", 0)
    if objective in ("csp", "location-prior"):
        argv += COORDINATE_CONFIG
    config = hyperparameters(parse_args(argv))
    places = [{"name": f"P{i}", "latitude": float(i), "longitude": float(i)} for i in range(4)]
    model = build_model(config, places=places, class_names=["a", "b", "c"] if objective == "location-prior" else None)
    set_trainable(model, trainable_parts(model, config))
    encoded = model.tokenize_posts(["one post", "another post here", "third", "fourth one"])
    batch = {**encoded, "labels": torch.tensor([0, 1, 2, 1]), "latlon": torch.tensor([[1.0, 2.0], [3.0, 4.0]] * 2),
             "content_embeds": torch.randn(4, model.config.embed_dim)}
    reset_accelerate_state()
    step = {"contrastgeo": lambda: ContrastGeoStep(Accelerator(cpu=True), model, places, 0, 0),
            "classifier": ClassifierStep, "csp": CSPStep, "location-prior": LocationPriorStep}[objective]()
    loss, _ = step(model, batch, 0)
    loss.backward()
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable
    assert not [name for name, parameter in model.named_parameters()
                if parameter.requires_grad and parameter.grad is None]
    if objective in ("csp", "location-prior"):
        assert not [name for name in trainable if name.startswith("text_model.")]
