"""train.py's configuration (files, flags, named errors), its step schedule and the training building blocks that
need no model: parsing only, so no file is read and nothing is trained."""

import json
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def posts_file(tmp_path):
    """A train file's path: parse_args checks the flags, not the file."""
    return tmp_path / "posts.csv"


# --------------------------------------------------------------------------- configuration
def test_config_file_is_overridden_by_flags(posts_file, tmp_path):
    from contrastgeo.training import parse_args

    (tmp_path / "run.yaml").write_text(
        f"train-file: {posts_file}\nshots: 2\nbatch_size: 4\nlora_learning_rate: 5e-5\nlora: true\n"
        "model_config:\n  tlm_fusion: concat\n  num_hard_negatives: 3\n"
    )
    args = parse_args(["--config", tmp_path / "run.yaml", "--batch-size", "8", "--num-hard-negatives", "2",
                       "--output-dir", tmp_path / "out"])
    assert (args.shots, args.batch_size, args.lora_learning_rate, args.lora) == (2, 8, 5e-5, True)
    assert args.model_config["tlm_fusion"] == "concat" and args.model_config["num_hard_negatives"] == 2
    assert args.model_config["fusion_encoder"] == "mlp"  # untouched defaults stay
    (tmp_path / "run.json").write_text(json.dumps({"objective": "csp", "train_file": str(posts_file)}))
    args = parse_args(["--config", tmp_path / "run.json", "--output-dir", tmp_path / "out"])
    assert args.task is None and args.batch_size == 256 and args.model_config["location_mode"] == "coordinates"


def test_the_default_place_prior_is_off_for_training_posts_that_follow_their_own_place_distribution(
        posts_file, tmp_path, caplog):
    from contrastgeo.training import parse_args
    from contrastgeo.training.modeling import resolve_place_prior

    def resolved(flags, train_labels):
        args = parse_args(["--train-file", posts_file, "--output-dir", tmp_path / "out", *flags])
        config = {"model_config": dict(args.model_config), "shots": args.shots}
        resolve_place_prior(config, args.place_prior_given, train_labels)
        return config["model_config"]["place_prior"]

    uneven, even = [0] * 30 + [1] * 5 + [2] * 9, [0] * 4 + [1] * 3 + [2] * 2
    with caplog.at_level("WARNING", logger="contrastgeo.training.modeling"):
        assert resolved([], uneven) is None
    assert "not spread evenly over their places (5 to 30 per place)" in caplog.text
    assert "--place-prior population to keep it" in caplog.text
    assert resolved([], even) == "population"  # at most twice as many posts in one place as in another
    assert resolved(["--shots", "4"], uneven) == "population"  # a few-shot draw, short places taken whole
    # Asked for, by flag, by --model-config or in a config file: kept.
    assert resolved(["--place-prior", "population"], uneven) == "population"
    assert resolved(["--model-config", "place_prior=population"], uneven) == "population"
    (tmp_path / "run.yaml").write_text("place_prior: population\n")
    assert resolved(["--config", tmp_path / "run.yaml"], uneven) == "population"
    assert resolved(["--place-prior", "none"], even) is None


@pytest.mark.parametrize("name", sorted(path.name for path in (REPO_ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_parse(name):
    from contrastgeo.training import parse_args

    args = parse_args(["--config", REPO_ROOT / "configs" / name])
    assert args.output_dir.startswith("runs/") and (args.task or args.train_file)


@pytest.mark.parametrize("content, message", [
    ("batch_sise: 4\n", "unknown key 'batch_sise'"),
    ("batch_size: many\n", "--batch-size got 'many'"),
    ("lora: yes please\n", "--lora must be true or false"),
    ("location_mode: classifier\n", "use --objective classifier"),
    ("model_config:\n  tlm_fusion: concat\n  places: []\n", "come from the data"),
    ("place_prior: census\n", "--place-prior got 'census': must be one of population or none"),
    ("place_prior_weight: -1\n", "--place-prior-weight got -1: must be a finite number >= 0"),
    ("learning_rate: -1.0\n", "--learning-rate got -1.0: must be a finite number >= 0"),
    ("lora_learning_rate: .nan\n", "--lora-learning-rate got nan: must be a finite number >= 0"),
])
def test_bad_config_values_are_named(posts_file, tmp_path, content, message):
    from contrastgeo.training import parse_args

    (tmp_path / "run.yaml").write_text(f"train_file: {posts_file}\n" + content)
    with pytest.raises(ValueError, match=message):
        parse_args(["--config", tmp_path / "run.yaml", "--output-dir", tmp_path / "out"])


def test_repeated_model_config_flags_add_up(posts_file, tmp_path):
    from contrastgeo.training import parse_args

    args = parse_args(["--objective", "csp", "--train-file", posts_file, "--output-dir", tmp_path / "out",
                       "--model-config", "location_num_scales=4", "location_hidden_size=16",
                       "--model-config", "csp_num_random_locations=8"])
    assert {key: args.model_config[key] for key in ("location_num_scales", "location_hidden_size",
                                                     "csp_num_random_locations")} == {
        "location_num_scales": 4, "location_hidden_size": 16, "csp_num_random_locations": 8}


@pytest.mark.parametrize("model_type, targets", [
    ("bert", ["query", "value"]),  # the default MiniLM: the targets of every run before the table existed
    ("distilbert", ["q_lin", "v_lin"]),  # not in peft's table
    ("deberta-v2", ["query_proj", "value_proj"]),  # peft's table
    ("funnel", None),  # in neither table: apply_lora picks them by the encoder's module names
])
def test_lora_targets_default_to_the_encoder_family_and_are_recorded(posts_file, tmp_path, model_type, targets):
    from contrastgeo.training import hyperparameters, parse_args

    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text(json.dumps({"model_type": model_type}))
    argv = ["--train-file", posts_file, "--output-dir", tmp_path / "out", "--model-name-or-path", encoder]
    assert hyperparameters(parse_args(argv))["lora_target_modules"] == targets
    given = parse_args(argv + ["--lora-target-modules", "key"])
    assert given.lora_target_modules == ["key"]


@pytest.mark.parametrize("objective", ["csp", "location-prior"])
@pytest.mark.parametrize("extra, message", [
    (["--places-file", "places.csv"], "--places-file names the places of contrastgeo and classifier labels"),
    (["--calibration", "heldout"], "--calibration fits the probability temperature of contrastgeo and classifier"),
])
def test_geolocation_only_flags_are_refused_by_the_location_objectives(posts_file, tmp_path, objective, extra,
                                                                        message):
    from contrastgeo.training import parse_args

    with pytest.raises(ValueError, match=message):
        parse_args(["--objective", objective, "--train-file", posts_file, "--output-dir", tmp_path / "out", *extra])


@pytest.mark.parametrize("objective, extra, message", [
    ("contrastgeo", ["--eval-fraction", "0.1"], "--eval-fraction \\(it holds out part of a csp or location-prior"),
    ("classifier", ["--eval-fraction", "0.1"], "--eval-fraction \\(it holds out part of a csp or location-prior"),
    ("csp", ["--eval-fraction", "0.1", "--eval-file", "eval.csv"],
     "--eval-fraction \\(.* this run evaluates on --eval-file eval.csv"),
    ("location-prior", ["--eval-fraction", "0.1", "--eval-file", "eval.csv"],
     "--eval-fraction \\(.* this run evaluates on --eval-file eval.csv"),
])
def test_an_explicit_eval_fraction_is_refused_where_it_would_not_be_used(posts_file, tmp_path, objective, extra,
                                                                         message):
    from contrastgeo.training import parse_args

    with pytest.raises(ValueError, match=f"--objective {objective}: flag\\(s\\) this run would not read: {message}"):
        parse_args(["--objective", objective, "--train-file", posts_file, "--output-dir", tmp_path / "out", *extra])


@pytest.mark.parametrize("task_flags, evaluated_on", [
    (["--objective", "location-prior"], "split 'test' of task yfcc-species"),  # the objective's default task
    (["--objective", "csp", "--eval-split", "train"], "split 'train' of task wikivoyage"),
])
def test_an_explicit_eval_fraction_is_refused_beside_a_task_evaluation_split(tmp_path, task_flags, evaluated_on):
    from contrastgeo.training import parse_args

    with pytest.raises(ValueError, match=f"--eval-fraction .* this run evaluates on {evaluated_on}"):
        parse_args([*task_flags, "--eval-fraction", "0.1", "--output-dir", tmp_path / "out"])


@pytest.mark.parametrize("objective, default", [("contrastgeo", 0.05), ("classifier", 0.05), ("csp", 0.05),
                                                ("location-prior", 0.0)])
def test_eval_fraction_defaults_record_what_each_objective_holds_out(posts_file, tmp_path, objective, default):
    """csp holds out 5% of its corpus, location-prior nothing; contrastgeo and classifier keep recording csp's
    0.05, so their training_config.json and the benchmark's config hashes are unchanged."""
    from contrastgeo.training import hyperparameters, parse_args
    from contrastgeo.training.config import HYPERPARAMETER_KEYS

    args = parse_args(["--objective", objective, "--train-file", posts_file, "--output-dir", tmp_path / "out"])
    assert hyperparameters(args)["eval_fraction"] == default
    assert set(hyperparameters(args)) == set(HYPERPARAMETER_KEYS)


@pytest.mark.parametrize("objective, extra, unread_change", [
    ("contrastgeo", [], {"learning_rate": 1e-3}),
    ("contrastgeo", ["--no-lora"], {"lora_rank": 4}),
    ("classifier", [], {"max_candidates": 8}),
    ("csp", [], {"lora_rank": 4}),
    ("location-prior", [], {"label_smoothing": 0.1}),
])
def test_a_runs_recorded_hyperparameters_load_as_its_config_file(posts_file, tmp_path, objective, extra,
                                                                 unread_change):
    """training_config.json's hyper-parameters hold every setting, the unread ones at their defaults: as a
    --config file they give the same run, while an unread setting changed in such a file is still refused."""
    import json

    from contrastgeo.training import hyperparameters, parse_args

    args = parse_args(["--objective", objective, "--train-file", posts_file, "--output-dir", tmp_path / "a", *extra])
    record = tmp_path / "hyperparameters.json"
    record.write_text(json.dumps(hyperparameters(args)))
    again = parse_args(["--config", record, "--train-file", posts_file, "--output-dir", tmp_path / "b"])
    assert hyperparameters(again) == hyperparameters(args)
    record.write_text(json.dumps({**hyperparameters(args), **unread_change}))
    (name,) = unread_change
    with pytest.raises(ValueError, match=f"would not read: --{name.replace('_', '-')} "):
        parse_args(["--config", record, "--train-file", posts_file, "--output-dir", tmp_path / "c"])


@pytest.mark.parametrize("argv, message", [
    (["--objective", "classifier", "--max-candidates", "8"], "--max-candidates \\(it bounds the candidate places"),
    (["--objective", "csp", "--max-candidates", "8"], "--max-candidates"),
    (["--objective", "classifier", "--tlm-weight", "0.5"], "--tlm-weight \\(it sets ContrastGeo's TLC / TLM"),
    (["--objective", "classifier", "--model-config", "num_hard_negatives=2"], "--num-hard-negatives"),
    (["--objective", "csp", "--label-smoothing", "0.1"], "--label-smoothing"),
    (["--objective", "location-prior", "--place-prior", "population"], "--place-prior \\(the place prior weighs"),
    (["--objective", "location-prior", "--pooling", "cls"], "--pooling \\(it sets how posts are encoded"),
    (["--objective", "location-prior", "--text-column", "body"], "--text-column \\(location-prior reads labels"),
    (["--objective", "csp", "--label-column", "place"], "--label-column \\(csp reads texts and coordinates"),
    (["--on-short-class", "all"], "--on-short-class \\(it applies to a --shots draw"),
    (["--checkpoints-total-limit", "2"], "--checkpoints-total-limit \\(this run writes no checkpoints"),
    (["--learning-rate", "1e-4"], "--learning-rate \\(with LoRA the text encoder's adapters train at "
                                  "--lora-learning-rate"),
    (["--objective", "csp", "--learning-rate", "1e-4"], "--learning-rate \\(csp keeps the text encoder frozen"),
    (["--no-lora", "--lora-rank", "4"], "--lora-rank \\(it configures LoRA, and this run has no --lora"),
    (["--objective", "classifier", "--lora-learning-rate", "1e-3"], "--lora-learning-rate"),
    (["--objective", "classifier", "--char-ngram-learning-rate", "0.01"], "--char-ngram-learning-rate \\(this model "
                                                                          "has no character n-gram channel"),
    (["--char-ngram-init", "zeros", "--char-ngram-learning-rate", "none", "--char-ngram-start-scale", "1"],
     "--char-ngram-start-scale \\(it applies to a channel started"),
    (["--objective", "classifier", "--prompt-templates", "In {name}."], "--prompt-templates \\(location_mode "
                                                                        "'classifier' puts no place names"),
    (["--location-encoder-kind", "grid"], "--location-encoder-kind \\(location_mode 'prompt' has no coordinate"),
])
def test_flags_a_run_would_not_read_are_refused_by_name(posts_file, tmp_path, argv, message):
    from contrastgeo.training import parse_args

    with pytest.raises(ValueError, match=f"flag\\(s\\) this run would not read: .*{message}"):
        parse_args(["--train-file", posts_file, "--output-dir", tmp_path / "out", *argv])


def test_flags_refused_from_a_config_file_and_all_named_at_once(posts_file, tmp_path):
    from contrastgeo.training import parse_args

    (tmp_path / "run.yaml").write_text("objective: classifier\nmax_candidates: 8\nmodel_config:\n  tlm_weight: 0.5\n")
    with pytest.raises(ValueError, match="would not read: --max-candidates \\(.*\\); --tlm-weight \\("):
        parse_args(["--config", tmp_path / "run.yaml", "--train-file", posts_file, "--output-dir", tmp_path / "out"])


@pytest.mark.parametrize("argv, message", [
    (["--train-file", "posts.csv", "--task-data-dir", "task"], "--task-data-dir goes with --task"),
    (["--train-file", "posts.csv", "--eval-split", "query"], "--eval-split goes with --task"),
    (["--task", "vardial-ch", "--task-data-dir", "task", "--raw-dir", "raw"], "--raw-dir builds the task from raw"),
    (["--objective", "csp", "--train-file", "posts.csv", "--gradient-checkpointing"],
     "--gradient-checkpointing recomputes the text encoder's activations .* csp keeps the text encoder frozen"),
    (["--objective", "classifier", "--train-file", "posts.csv", "--model-config", "char_ngram_buckets=64",
      "--char-ngram-init", "centroids"], "--char-ngram-init centroids maps class weights .* --char-ngram-init zeros"),
])
def test_flag_values_a_run_would_not_use_are_refused(tmp_path, argv, message):
    from contrastgeo.training import parse_args

    with pytest.raises(ValueError, match=message):
        parse_args([*argv, "--output-dir", tmp_path / "out"])


def test_schedule_has_an_epoch_count_and_a_step_floor():
    from contrastgeo.training.run import training_schedule

    config = {"batch_size": 8, "gradient_accumulation_steps": 1, "num_train_epochs": 2, "min_train_steps": 0,
              "max_train_steps": None}
    assert training_schedule(config, 24, 1) == (6, 2, 3)
    assert training_schedule({**config, "min_train_steps": 10}, 24, 1) == (10, 4, 3)
    assert training_schedule({**config, "max_train_steps": 5}, 24, 1) == (5, 2, 3)
    assert training_schedule(config, 24, 2) == (4, 2, 2)  # 3 batches over 2 processes
    assert training_schedule({**config, "gradient_accumulation_steps": 2}, 24, 1) == (4, 2, 2)


# --------------------------------------------------------------------------- building blocks
def test_candidate_sampler_keeps_the_global_positives_and_is_seeded():
    from contrastgeo.training.batches import CandidateSampler

    sampler = CandidateSampler(num_places=50, max_candidates=10, seed=3)
    labels = torch.tensor([4, 9, 4, 31])
    first = sampler(labels, step=0)
    assert first.numel() == 10 and torch.equal(first, first.sort().values)
    assert set(labels.tolist()) <= set(first.tolist())
    assert torch.equal(first, sampler(labels, step=0))
    assert not torch.equal(first, sampler(labels, step=1))
    assert torch.equal(first[torch.searchsorted(first, labels)], labels)
    assert torch.equal(CandidateSampler(8, 10, 3)(labels % 8, 0), torch.arange(8))
    assert torch.equal(CandidateSampler(8, 0, 3)(labels % 8, 0), torch.arange(8))
    many = torch.arange(12)
    assert torch.equal(sampler(many, 0), many)  # more positives than the bound: all positives, nothing else


def test_tlm_monitor_warns_only_when_the_loss_sits_at_the_constant_entropy(caplog):
    from contrastgeo.training.objectives import TLMCollapseMonitor

    collapsed, learning = TLMCollapseMonitor(warmup_steps=2, window=3), TLMCollapseMonitor(warmup_steps=2, window=3)
    with caplog.at_level("WARNING"):
        warned = [collapsed.update(step, 0.412, 0.410) for step in range(1, 7)]
        assert not any(learning.update(step, 0.30, 0.410) for step in range(1, 7))
    assert warned == [False, False, False, False, True, False]  # after warm-up and a full window, once
    assert "constant predictor" in caplog.text


def test_tlm_monitor_state_carries_its_window_and_warning_across_a_resume():
    from contrastgeo.training.objectives import TLMCollapseMonitor

    uninterrupted, interrupted = TLMCollapseMonitor(warmup_steps=2, window=3), TLMCollapseMonitor(warmup_steps=2,
                                                                                                   window=3)
    assert [uninterrupted.update(step, 0.412, 0.410) for step in range(1, 8)] == [False] * 4 + [True, False, False]
    for step in range(1, 5):  # checkpoint after step 4: two values of the window seen
        interrupted.update(step, 0.412, 0.410)
    resumed = TLMCollapseMonitor(warmup_steps=2, window=3)
    resumed.load_state_dict(json.loads(json.dumps(interrupted.state_dict())))  # as training_progress.json holds it
    assert [resumed.update(step, 0.412, 0.410) for step in range(5, 8)] == [True, False, False]
    warned_again = TLMCollapseMonitor(warmup_steps=2, window=3)
    warned_again.load_state_dict(resumed.state_dict())
    assert not warned_again.update(8, 0.412, 0.410)  # a warning given before the checkpoint is not given twice


@pytest.mark.parametrize("encoder, reason", [("{tmp}/no/such/encoder", "no such folder"),
                                             ("{tmp}", "a folder without an encoder's config.json"),
                                             ("no-such-org/no-such-model", "couldn't connect|not a valid|offline")])
def test_an_encoder_that_cannot_be_loaded_is_named_before_the_run(posts_file, tmp_path, encoder, reason):
    from contrastgeo.training import parse_args

    encoder = encoder.format(tmp=tmp_path)
    with pytest.raises(ValueError, match=f"--model-name-or-path {encoder}: no text encoder can be loaded from it "
                                         f"\\(.*({reason})"):
        parse_args(["--train-file", posts_file, "--model-name-or-path", encoder, "--output-dir", tmp_path / "out"])
