"""train.py with the geolocation objectives (contrastgeo, classifier) end to end on tiny data: evaluation and
saving, calibration, the n-gram channel's start, places and the place prior, LoRA save/load, resume equivalence,
bf16 (configuration and scheduling: test_train_config.py; the location objectives: test_train_location.py).
"""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from datasets_scripts.user_data import spherical_mean
from tests.tiny_models import (TINY_POSTS_PLACES, TINY_POSTS_POOL_PER_PLACE, TINY_POSTS_QUERY_PER_PLACE,
                               save_tiny_model)
from tests.train_runs import (METRIC_KEYS, geolocation_argv, load_saved, log_history,  # noqa: F401 (fixtures)
                              one_torch_thread, reevaluated_top1, tiny, train)


@pytest.fixture(scope="module")
def contrastgeo_run(tiny, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("contrastgeo")
    results = train(geolocation_argv(tiny, output_dir, "--max-candidates", 4))
    return output_dir, results


def test_contrastgeo_run_evaluates_and_saves_a_loadable_model(contrastgeo_run, tiny):
    output_dir, results = contrastgeo_run
    saved = json.loads((output_dir / "eval_results.json").read_text())
    assert saved == results and METRIC_KEYS <= set(saved)
    assert saved["num_examples"] == TINY_POSTS_PLACES * TINY_POSTS_QUERY_PER_PLACE
    history = log_history(output_dir)
    assert [record["step"] for record in history] == [1, 2, 3, 4]
    assert all(math.isfinite(record["loss_tlc"]) and math.isfinite(record["loss_tlm"]) for record in history)
    # Candidates: the batch's places plus random ones up to the bound (a batch of 8 may hold more than 4 places).
    assert all(4 <= record["num_candidates"] <= TINY_POSTS_PLACES for record in history)
    description = json.loads((output_dir / "training_config.json").read_text())["data"]
    assert description["num_train_posts"] == TINY_POSTS_PLACES * 4 and description["num_pool_posts"] == 36

    model = load_saved(output_dir)
    pool = pd.read_csv(tiny["pool"])
    expected_names = sorted(pool["label"].unique())
    assert [place["name"] for place in model.config.places] == expected_names
    for place in model.config.places:  # without a places file: the spherical mean of all the label's pool posts
        rows = pool[pool["label"] == place["name"]]
        assert (place["latitude"], place["longitude"]) == pytest.approx(
            spherical_mean(rows["latitude"], rows["longitude"]))
    predictions = model.geolocate(["Hüt gömmer go schwümme"], top_k=3)[0]
    assert len(predictions) == 3 and {p["name"] for p in predictions} <= set(expected_names)
    # eval_results.json describes the saved model.
    assert reevaluated_top1(model, tiny["query"]) == pytest.approx(saved["top1"])


def test_default_uses_no_labelled_post_beyond_the_shots_for_calibration(contrastgeo_run):
    output_dir, results = contrastgeo_run
    assert results["probability_temperature"] == 1.0 and results["ece"] == pytest.approx(results["ece_uncalibrated"])
    assert load_saved(output_dir).config.probability_temperature == 1.0
    description = json.loads((output_dir / "training_config.json").read_text())["data"]
    assert description["num_heldout_posts"] == 0 and description["num_train_posts"] == TINY_POSTS_PLACES * 4


def test_temperature_is_fitted_on_heldout_posts_and_saved(tiny, tmp_path):
    results = train(geolocation_argv(tiny, tmp_path, "--max-candidates", 4, "--calibration", "heldout"))
    model = load_saved(tmp_path)
    temperature = model.config.probability_temperature
    assert temperature != 1.0 and results["probability_temperature"] == pytest.approx(temperature)
    assert 0.0 <= results["ece"] <= 1.0 and 0.0 <= results["ece_uncalibrated"] <= 1.0
    # `ece` is the saved (calibrated) model's; `ece_uncalibrated` the same model's at temperature 1.
    from contrastgeo.metrics import expected_calibration_error

    query = pd.read_csv(tiny["query"])
    truth = np.array([[p["name"] for p in model.config.places].index(label) for label in query["label"]])
    for key, value in (("ece", temperature), ("ece_uncalibrated", 1.0)):
        model.config.probability_temperature = value
        probabilities, _ = model.predict_scores(query["text"].tolist())
        confidence, predicted = probabilities.max(-1)
        assert expected_calibration_error(confidence.numpy(), predicted.numpy() == truth) == pytest.approx(
            results[key], abs=1e-6)


def test_heldout_calibration_posts_are_pool_posts_outside_the_shots(tiny, tmp_path):
    from contrastgeo.training import parse_args
    from contrastgeo.training.data import load_geolocation_data

    data = load_geolocation_data(parse_args(geolocation_argv(tiny, tmp_path, "--calibration", "heldout")))
    assert len(data.train) == TINY_POSTS_PLACES * 4
    assert len(data.heldout) == TINY_POSTS_PLACES * (TINY_POSTS_POOL_PER_PLACE - 4)
    assert not set(data.train["text"]) & set(data.heldout["text"])
    assert set(data.train["text"]) | set(data.heldout["text"]) == set(pd.read_csv(tiny["pool"])["text"])
    assert data.description["num_heldout_posts"] == len(data.heldout)
    assert load_geolocation_data(parse_args(geolocation_argv(tiny, tmp_path))).heldout is None  # the default: none
    whole_pool = load_geolocation_data(parse_args(geolocation_argv(tiny, tmp_path, "--shots", 0, "--calibration",
                                                                    "heldout")))
    assert whole_pool.heldout is None and len(whole_pool.train) == TINY_POSTS_PLACES * TINY_POSTS_POOL_PER_PLACE


def test_classifier_run(tiny, tmp_path):
    results = train(geolocation_argv(tiny, tmp_path, "--objective", "classifier"))
    assert METRIC_KEYS <= set(results)
    model = load_saved(tmp_path)
    assert model.config.location_mode == "classifier" and len(model.config.places) == TINY_POSTS_PLACES
    assert reevaluated_top1(model, tiny["query"]) == pytest.approx(results["top1"])
    assert "loss_tlm" not in log_history(tmp_path)[0]


def test_char_ngram_channel_starts_on_the_trained_model_from_the_training_posts(tiny, tmp_path, monkeypatch, capsys):
    from contrastgeo.training import parse_args
    from contrastgeo.training.data import load_geolocation_data
    from modeling_contrastgeo import ContrastGeoModel
    from modeling_contrastgeo.char_ngrams import CROSS_VALIDATION_SCALE_FACTORS

    starts = []
    start_from_labels = ContrastGeoModel.init_char_ngram_from_labels

    def recording_start(model, texts, labels, **kwargs):
        channel_before = model.char_ngram_encoder.bag.weight.clone()
        place_embeds = model.gallery_embeddings(model.config.places).clone()
        start_from_labels(model, texts, labels, **kwargs)
        starts.append({"posts": (list(texts), list(labels), kwargs.get("start")), "scale": kwargs.get("scale"),
                       "before": channel_before, "after": model.char_ngram_encoder.bag.weight.clone(),
                       "place_embeds": place_embeds})

    monkeypatch.setattr(ContrastGeoModel, "init_char_ngram_from_labels", recording_start)
    channel = ["--model-config", "char_ngram_buckets=512"]
    results = train(geolocation_argv(tiny, tmp_path, *channel))
    model = load_saved(tmp_path)
    training_rows = load_geolocation_data(parse_args(geolocation_argv(tiny, tmp_path / "data"))).train
    training_posts = training_rows["text"]
    # The contrastgeo default: the encoder trains without the channel (still zero when it starts), then a logistic
    # start on exactly the training posts, at the cross-validated scale, on the trained place embeddings.
    [default_start] = starts
    assert default_start["posts"] == (list(training_posts), list(training_rows["label"]), "logistic")
    assert default_start["scale"] in CROSS_VALIDATION_SCALE_FACTORS
    assert not default_start["before"].any()
    assert torch.equal(model.char_ngram_encoder.bag.weight, default_start["after"])
    assert torch.allclose(model.gallery_embeddings(model.config.places), default_start["place_embeds"], atol=1e-5)
    assert reevaluated_top1(model, tiny["query"]) == pytest.approx(results["top1"])
    featurizer = model.char_ngram_featurizer
    seen = set().union(*(featurizer.bucket_counts(text) for text in training_posts))
    assert set(torch.nonzero(model.char_ngram_encoder.idf).flatten().tolist()) == seen

    before = ["--char-ngram-start-at", "before-training", "--char-ngram-start-scale", 1.0]
    train(geolocation_argv(tiny, tmp_path / "kept", *channel, *before))
    assert torch.equal(load_saved(tmp_path / "kept").char_ngram_encoder.bag.weight, starts[1]["after"])
    train(geolocation_argv(tiny, tmp_path / "trained", *channel, *before, "--char-ngram-learning-rate", 0.01))
    trained_channel = load_saved(tmp_path / "trained").char_ngram_encoder.bag.weight
    assert not torch.allclose(trained_channel, starts[2]["after"])  # a rate above 0 trains it from its start
    train(geolocation_argv(tiny, tmp_path / "zeros", *channel, "--char-ngram-init", "zeros",
                           "--char-ngram-learning-rate", "none", "--max-train-steps", 1))
    assert len(starts) == 3
    with pytest.raises(ValueError, match="would add nothing"):
        parse_args(geolocation_argv(tiny, tmp_path / "dead", *channel, "--char-ngram-init", "zeros"))
    with pytest.raises(ValueError, match="cannot be trained"):
        parse_args(geolocation_argv(tiny, tmp_path / "late", *channel, "--char-ngram-learning-rate", 0.01))
    with pytest.raises(SystemExit):
        parse_args(geolocation_argv(tiny, tmp_path / "bad", *channel, "--char-ngram-start-scale", "-1"))
    assert "--char-ngram-start-scale: must be a finite number >= 0 or none, got -1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--char-ngram-init zeros"):  # refused with the flags, before any training
        parse_args(geolocation_argv(tiny, tmp_path / "classifier", "--objective", "classifier", "--char-ngram-init",
                                    "centroids", *channel, "--max-train-steps", 1))


def test_optimizer_groups_give_each_part_its_learning_rate(tiny, tmp_path, capsys):
    from contrastgeo.training import parse_args
    from contrastgeo.training.config import hyperparameters
    from contrastgeo.training.modeling import build_model, optimizer_parameter_groups, set_trainable, trainable_parts

    def groups(*flags):
        config = hyperparameters(parse_args(geolocation_argv(tiny, tmp_path, "--no-lora", "--learning-rate", 1e-5,
                                                             "--head-learning-rate", 1e-3, "--char-ngram-start-at",
                                                             "before-training", *flags)))
        model = build_model(config, places=[{"name": f"P{i}", "latitude": 1.0 * i, "longitude": 0.0}
                                            for i in range(3)])
        set_trainable(model, trainable_parts(model, config))
        return {group["name"]: group["lr"] for group in optimizer_parameter_groups(model, config)}

    channel = ["--model-config", "char_ngram_buckets=64"]
    assert groups(*channel, "--char-ngram-learning-rate", 0.05) == {
        "char_ngram": 0.05, "encoder": 1e-5, "encoder_no_decay": 1e-5, "head": 1e-3, "head_no_decay": 1e-3}
    assert groups(*channel, "--char-ngram-learning-rate", "none")["char_ngram"] == 1e-3
    assert "char_ngram" not in groups(*channel)  # frozen by default: not in the optimizer at all
    for bad in (-1, "nan", "inf"):
        with pytest.raises(SystemExit):
            groups("--char-ngram-learning-rate", bad)
        assert "--char-ngram-learning-rate: must be a finite number >= 0 or none" in capsys.readouterr().err


def test_places_file_sets_names_and_coordinates(tiny, tmp_path):
    labels = sorted(pd.read_csv(tiny["pool"])["label"].unique())
    places = pd.DataFrame({"label": labels, "name": [f"Place {i}" for i in range(len(labels))],
                           "latitude": np.linspace(45, 48, len(labels)), "longitude": np.linspace(6, 10, len(labels))})
    places.to_csv(tmp_path / "places.csv", index=False)
    output_dir = tmp_path / "run"
    train(geolocation_argv(tiny, output_dir, "--places-file", tmp_path / "places.csv", "--max-train-steps", 1))
    saved = load_saved(output_dir).config.places
    assert [place["name"] for place in saved] == places["name"].tolist()
    assert [place["latitude"] for place in saved] == pytest.approx(places["latitude"].tolist())


def test_place_prior_run_saves_populations_and_reports_scores_with_and_without_it(tiny, tmp_path):
    from modeling_contrastgeo.place_prior import place_populations
    from modeling_contrastgeo.places import normalize_places

    results = train(geolocation_argv(tiny, tmp_path, "--place-prior", "population", "--max-train-steps", 2))
    model = load_saved(tmp_path)
    assert model.config.place_prior == "population" and model.config.place_prior_weight == 1.5  # the default
    # Looked up once at training (GeoNames' nearest city to each label's coordinates) and saved with the label set.
    bare = [{key: place[key] for key in ("name", "latitude", "longitude")} for place in model.config.places]
    assert [place["population"] for place in model.config.places] == place_populations(normalize_places(bare)).tolist()
    assert reevaluated_top1(model, tiny["query"]) == pytest.approx(results["top1"])
    model.config.place_prior = None
    assert reevaluated_top1(model, tiny["query"]) == pytest.approx(results["without_place_prior/top1"])
    assert METRIC_KEYS <= {key.split("/", 1)[1] for key in results if key.startswith("without_place_prior/")}

    results = train(geolocation_argv(tiny, tmp_path / "none", "--place-prior", "none", "--max-train-steps", 1))
    assert load_saved(tmp_path / "none").config.place_prior is None
    assert not any(key.startswith("without_place_prior/") for key in results)


def test_region_populations_come_from_the_train_file_only(tmp_path, caplog):
    from contrastgeo.training import parse_args
    from contrastgeo.training.data import load_geolocation_data

    # "IS" spreads over Iceland (Reykjavik, Akureyri, Keflavik), so it is a region; "Bern" is one spot.
    points = ([(64.13548, -21.89541)] * 4 + [(65.68353, -18.0878)] * 3 + [(64.00492, -22.56242)] * 3
              + [(46.948, 7.4474)] * 2)
    posts = pd.DataFrame({"text": [f"post {i}" for i in range(len(points))], "label": ["IS"] * 10 + ["Bern"] * 2,
                          "latitude": [lat for lat, _ in points], "longitude": [lon for _, lon in points]})
    posts.to_csv(tmp_path / "posts.csv", index=False)
    argv = ["--train-file", tmp_path / "posts.csv", "--eval-file", tmp_path / "posts.csv", "--output-dir", tmp_path]
    with caplog.at_level("INFO", logger="datasets_scripts.user_data"):
        data = load_geolocation_data(parse_args(argv))
    assert [place.get("population", 0) > 100_000 for place in data.places] == [False, True]
    assert caplog.text.count("spread over regions") == 1  # the eval file's places are not used, so not looked up
    assert len(data.eval["text"]) == len(posts)


def test_an_output_dir_that_is_a_file_is_refused_before_training(tiny, tmp_path):
    from contrastgeo.training import parse_args

    (tmp_path / "taken").write_text("a file", encoding="utf-8")
    with pytest.raises(ValueError, match="--output-dir .*taken is a file: the run writes a folder there"):
        parse_args(geolocation_argv(tiny, tmp_path / "taken"))


def test_a_folder_holding_a_run_is_replaced_only_when_asked(tiny, tmp_path):
    from contrastgeo.training import parse_args

    earlier = ["--max-train-steps", 3, "--checkpointing-steps", 1, "--lora", "--save-lora-adapter"]
    train(geolocation_argv(tiny, tmp_path, *earlier))
    saved = (tmp_path / "model.safetensors").read_bytes()
    assert (tmp_path / "checkpoints" / "step_3").is_dir() and (tmp_path / "text_encoder_lora").is_dir()
    with pytest.raises(ValueError, match="holds an earlier run \\(training_config.json, checkpoints, "
                                         "model.safetensors\\): continue it with --resume-from-checkpoint latest"):
        parse_args(geolocation_argv(tiny, tmp_path, "--seed", 1))
    assert (tmp_path / "model.safetensors").read_bytes() == saved
    parse_args(geolocation_argv(tiny, tmp_path, *earlier, "--resume-from-checkpoint", "latest"))  # allowed

    # Replaced: nothing of the earlier run is left for `latest` to resume or for a reader to mistake for this run's.
    train(geolocation_argv(tiny, tmp_path, "--max-train-steps", 2, "--seed", 1, "--overwrite-output-dir"))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "text_encoder_lora").exists()
    assert json.loads((tmp_path / "training_config.json").read_text())["hyperparameters"]["seed"] == 1
    assert (tmp_path / "model.safetensors").read_bytes() != saved
    with pytest.raises(ValueError, match="no checkpoints/step_N in"):
        train(geolocation_argv(tiny, tmp_path, "--resume-from-checkpoint", "latest"))


def test_a_single_place_is_an_error(tmp_path):
    from contrastgeo.training import parse_args
    from contrastgeo.training.data import load_geolocation_data

    pd.DataFrame({"text": ["a", "b"], "label": ["Bern", "Bern"], "latitude": [46.9, 46.9],
                  "longitude": [7.4, 7.4]}).to_csv(tmp_path / "posts.csv", index=False)
    with pytest.raises(ValueError, match="one place \\('Bern'\\) for every post"):
        load_geolocation_data(parse_args(["--train-file", tmp_path / "posts.csv", "--output-dir", tmp_path / "out"]))
    # Said before the eval file is read (this one does not even exist): the run cannot start either way.
    with pytest.raises(ValueError, match="one place \\('Bern'\\) for every post"):
        load_geolocation_data(parse_args(["--train-file", tmp_path / "posts.csv", "--eval-file", tmp_path / "none.csv",
                                          "--output-dir", tmp_path / "out"]))


def test_eval_labels_unknown_to_training_are_an_error(tiny, tmp_path):
    query = pd.read_csv(tiny["query"])
    query.loc[3, "label"] = "Atlantis"
    query.to_csv(tmp_path / "query.csv", index=False)
    argv = geolocation_argv(tiny, tmp_path / "run")
    argv[argv.index(tiny["query"])] = tmp_path / "query.csv"
    # Row 3 is line 5 of the file: the header is line 1.
    with pytest.raises(ValueError, match="1 row\\(s\\) .* not training labels, first at line 5: \\['Atlantis'\\]"):
        train(argv)


# peft's PeftModel.from_pretrained, called by this test, reads transformers' deprecated alias (the package filters it
# where it calls peft itself, in contrastgeo.training.lora).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_merged_model_loads_and_equals_base_plus_adapter(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModel

    train(geolocation_argv(tiny, tmp_path, "--lora", "--save-lora-adapter", "--lora-rank", 4))
    state = load_file(str(tmp_path / "model.safetensors"))
    assert not [key for key in state if "lora" in key or "base_model" in key]
    model = load_saved(tmp_path)
    assert len(model.geolocate(["Grüezi"], top_k=2)[0]) == 2

    base = AutoModel.from_pretrained(tiny["encoder"])
    rebuilt = PeftModel.from_pretrained(base, tmp_path / "text_encoder_lora").merge_and_unload().state_dict()
    base_state = AutoModel.from_pretrained(tiny["encoder"]).state_dict()
    merged = model.text_model.state_dict()
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, rebuilt[name])
        if ".query." in name or ".value." in name:
            continue
        # Only the adapted projections change: the rest of the encoder stays frozen under LoRA.
        torch.testing.assert_close(tensor, base_state[name], rtol=0, atol=0)
    changed = [name for name in merged if ".query.weight" in name and not torch.equal(merged[name], base_state[name])]
    assert changed, "LoRA training left the query projections unchanged"


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_by_default_adapts_the_query_and_value_projections_of_another_encoder_family(tiny, tmp_path, minilm_path):
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer, DistilBertConfig, DistilBertModel

    # DistilBERT names them q_lin and v_lin, not BERT's query and value.
    encoder = save_tiny_model(tmp_path / "distilbert", AutoTokenizer.from_pretrained(minilm_path), DistilBertModel,
                              DistilBertConfig, dim=32, n_layers=2, n_heads=2, hidden_dim=37, dropout=0.0,
                              attention_dropout=0.0)
    train(geolocation_argv(tiny, tmp_path / "out", "--model-name-or-path", encoder, "--max-train-steps", 2,
                           "--save-lora-adapter"))
    recorded = json.loads((tmp_path / "out" / "training_config.json").read_text())
    assert recorded["hyperparameters"]["lora_target_modules"] == ["q_lin", "v_lin"]
    merged = load_saved(tmp_path / "out").text_model.state_dict()
    base = AutoModel.from_pretrained(encoder).state_dict()
    changed = sorted(name for name in base if not torch.equal(merged[name], base[name]))
    assert changed == [f"transformer.layer.{i}.attention.{projection}.weight" for i in (0, 1)
                       for projection in ("q_lin", "v_lin")]
    rebuilt = PeftModel.from_pretrained(AutoModel.from_pretrained(encoder), tmp_path / "out" / "text_encoder_lora")
    for name, tensor in rebuilt.merge_and_unload().state_dict().items():
        torch.testing.assert_close(tensor, merged[name])


def test_resumed_run_ends_like_an_uninterrupted_one(tiny, tmp_path):
    # Dropout and multinomial hard negatives draw on the RNG, so the checkpoint's RNG states matter.
    common = ["--model-name-or-path", tiny["dropout_encoder"], "--max-train-steps", 7, "--max-candidates", 4]
    uninterrupted = train(geolocation_argv(tiny, tmp_path / "a", *common))
    # 3 steps per epoch: the interruption falls inside the second epoch.
    train(geolocation_argv(tiny, tmp_path / "b", *common, "--checkpointing-steps", 3, "--stop-after-steps", 4))
    assert not (tmp_path / "b" / "eval_results.json").exists()
    assert sorted(path.name for path in (tmp_path / "b" / "checkpoints").iterdir()) == ["step_3", "step_4"]
    resumed = train(geolocation_argv(tiny, tmp_path / "b", *common, "--resume-from-checkpoint", "latest"))
    assert resumed == uninterrupted
    assert [r["loss"] for r in log_history(tmp_path / "a")] == [r["loss"] for r in log_history(tmp_path / "b")]
    weights_a = load_file(str(tmp_path / "a" / "model.safetensors"))
    weights_b = load_file(str(tmp_path / "b" / "model.safetensors"))
    for name, tensor in weights_a.items():
        torch.testing.assert_close(weights_b[name], tensor, rtol=0, atol=0)


@pytest.mark.parametrize("encoder_training", ["--lora", "--no-lora"])
def test_gradient_checkpointing_trains_the_same_model(tiny, tmp_path, caplog, encoder_training):
    # Dropout draws on the RNG: the recomputed forward pass must replay the same masks.
    common = ["--model-name-or-path", tiny["dropout_encoder"], "--max-train-steps", 3, encoder_training]
    plain = train(geolocation_argv(tiny, tmp_path / "plain", *common))
    with caplog.at_level("INFO", logger="contrastgeo.training.run"):
        checkpointed = train(geolocation_argv(tiny, tmp_path / "checkpointed", *common, "--gradient-checkpointing"))
    assert re.search("activation checkpointing on in [1-9][0-9]* modules", caplog.text)
    assert checkpointed == plain
    weights = load_file(str(tmp_path / "plain" / "model.safetensors"))
    for name, tensor in load_file(str(tmp_path / "checkpointed" / "model.safetensors")).items():
        torch.testing.assert_close(tensor, weights[name], rtol=0, atol=0)


def test_bf16_gradient_accumulation_periodic_evaluation_and_tensorboard(tiny, tmp_path):
    results = train(geolocation_argv(tiny, tmp_path, "--mixed-precision", "bf16", "--with-tracking",
                                     "--gradient-accumulation-steps", 2, "--max-train-steps", 3, "--eval-steps", 2))
    assert math.isfinite(results["mean_km"])
    history = log_history(tmp_path)
    assert [record["step"] for record in history] == [1, 2, 3] and history[-1]["epoch"] == 1  # 2 updates per epoch
    evaluations = [json.loads(line) for line in (tmp_path / "eval_history.jsonl").read_text().splitlines()]
    assert [record["step"] for record in evaluations] == [2] and METRIC_KEYS <= set(evaluations[0])
    assert list((tmp_path / "runs" / "contrastgeo").glob("events.out.tfevents.*"))
