"""The model card train.py writes (Hub metadata that parses, numbers read from the run) and pushes to a stand-in Hub."""

import json

import pytest
from huggingface_hub import ModelCard

from contrastgeo.training.model_card import base_model_id
from tests.hub_clients import REMOTE_CODE, run_client
from tests.train_runs import geolocation_argv, one_torch_thread, tiny, train  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def carded_run(tiny, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("carded") / "swiss-k4"
    train(geolocation_argv(tiny, output_dir, "--place-prior", "population"))
    return output_dir


def test_card_metadata_holds_the_runs_own_evaluation(carded_run):
    card = ModelCard.load(carded_run / "README.md")
    results = json.loads((carded_run / "eval_results.json").read_text())
    metadata = card.data.to_dict()
    assert metadata["library_name"] == "transformers"
    assert {"contrastgeo", "geolocation", "custom_code"} <= set(metadata["tags"])
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert reported["accuracy"] == pytest.approx(100 * results["top1"], abs=0.01)
    assert reported["median_error_km"] == pytest.approx(results["median_km"], abs=0.05)
    assert {result.dataset_split for result in card.data.eval_results} == {"eval"}


def test_card_body_names_the_places_the_data_and_both_scorings(carded_run):
    text = (carded_run / "README.md").read_text(encoding="utf-8")
    config = json.loads((carded_run / "config.json").read_text())
    results = json.loads((carded_run / "eval_results.json").read_text())
    assert all(place["name"] in text for place in config["places"])
    assert "4 posts per place drawn with seed 0" in text
    assert "| Top-1 accuracy (%) |" in text and "without the place prior" in text
    with_prior, without_prior = 100 * results["top1"], 100 * results["without_place_prior/top1"]
    assert f"| Top-1 accuracy (%) | {with_prior:.1f} | {without_prior:.1f} |" in text
    assert 'AutoModel.from_pretrained("path/to/this/folder", trust_remote_code=True)' in text


def test_card_of_a_run_without_evaluation_says_so(tiny, tmp_path):
    output_dir = tmp_path / "no-eval"
    argv = geolocation_argv(tiny, output_dir)
    eval_at = argv.index("--eval-file")
    train(argv[:eval_at] + argv[eval_at + 2:])
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.eval_results is None
    assert "No evaluation data was given to this run" in card.text


def test_base_model_is_a_hub_id_or_nothing(tmp_path, minilm_path):
    assert base_model_id(minilm_path) == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model_id("bert-base-uncased") == "bert-base-uncased"
    assert base_model_id("no/such/folder") is None  # neither a folder here nor a Hub id
    assert base_model_id("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert base_model_id(tmp_path) is None  # a local folder names no Hub model
    assert base_model_id(None) == "sentence-transformers/all-MiniLM-L6-v2"  # train.py's default encoder


@pytest.mark.parametrize("num_places, listed, more", [(31, 31, None), (50, 30, "… (20 more)")])
def test_card_of_the_default_encoder_lists_the_places(num_places, listed, more):
    from contrastgeo.training.model_card import build_model_card

    places = [{"name": f"Place {index}", "latitude": 0.0, "longitude": float(index)} for index in range(num_places)]
    config = {"objective": "contrastgeo", "model_name_or_path": None, "shots": 4, "seed": 1}
    description = {"task": "toy", "train_split": "pool", "eval_split": "query", "shots": 4, "seed": 1,
                   "num_train_posts": 4 * num_places, "num_pool_posts": 999}
    card = build_model_card(config, description, {}, {"places": places, "location_mode": "prompt"})
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert "text encoder `sentence-transformers/all-MiniLM-L6-v2`" in card.text
    assert sum(f"Place {index};" in card.text or f"Place {index}." in card.text for index in range(num_places)) == listed
    assert (more in card.text) if more else ("more)" not in card.text)


@pytest.mark.parametrize("extra, message", [
    (["--hub-model-id", "me/model"], "--hub-model-id goes with --push-to-hub"),
    (["--hub-private-repo"], "--hub-private-repo goes with --push-to-hub"),
    (["--push-to-hub", "--hub-model-id", "a/b/c"], "'a/b/c' is not a Hub repository id"),
    (["--push-to-hub"], "HF_HUB_OFFLINE is set"),
])
def test_hub_flags_are_refused_before_training(tiny, tmp_path, monkeypatch, extra, message):
    from contrastgeo.training import parse_args

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=message):
        parse_args(geolocation_argv(tiny, tmp_path / "never", *extra))
    assert not (tmp_path / "never").exists()


TRAIN_AND_PUSH = """
from contrastgeo.training import main
RESULT = main(ARGS["argv"])
"""


@pytest.mark.slow
def test_push_to_hub_uploads_the_run_which_loads_by_repo_id(tiny, tmp_path, hub_stand_in):
    from transformers import AutoModel


    output_dir = tmp_path / "run"
    argv = [str(arg) for arg in geolocation_argv(tiny, output_dir, "--checkpointing-steps", 2, "--push-to-hub",
                                                 "--hub-model-id", "dialects/swiss-k4", "--hub-private-repo")]
    run_client(hub_stand_in, tmp_path / "hf_home", TRAIN_AND_PUSH, argv=argv)

    pushed = hub_stand_in.files("dialects/swiss-k4")
    local = {path.relative_to(output_dir).as_posix(): path.read_bytes()
             for path in output_dir.rglob("*") if path.is_file()}
    assert any(name.startswith("checkpoints/") for name in local)  # kept locally, for --resume-from-checkpoint
    assert pushed == {name: data for name, data in local.items() if not name.startswith("checkpoints/")}
    assert {"README.md", "config.json", "model.safetensors", "modeling_contrastgeo.py", "eval_results.json",
            "tokenizer.json"} <= set(pushed)
    assert b'AutoModel.from_pretrained("dialects/swiss-k4", trust_remote_code=True)' in pushed["README.md"]
    assert hub_stand_in.is_private("dialects/swiss-k4")

    posts = ["Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht isch s Beschte"]
    expected = json.loads(json.dumps(AutoModel.from_pretrained(output_dir, trust_remote_code=True).geolocate(
        posts, top_k=2)))
    loaded = run_client(hub_stand_in, tmp_path / "hf_home_reader", REMOTE_CODE, cwd=tmp_path,
                        repo="dialects/swiss-k4", posts=posts, top_k=2)
    assert loaded == expected


TRAIN_AND_FAIL_TO_PUSH = """
from contrastgeo.training import main
try:
    main(ARGS["argv"])
    RESULT = None
except RuntimeError as error:
    RESULT = str(error)
"""


@pytest.mark.slow
def test_a_refused_push_keeps_the_saved_model_and_says_how_to_retry(tiny, tmp_path, hub_stand_in):
    output_dir = tmp_path / "run"
    # A bare name passes the client's checks; the stand-in, which has no user to put it under, refuses it (400).
    argv = [str(arg) for arg in geolocation_argv(tiny, output_dir, "--push-to-hub", "--hub-model-id", "bare-name")]
    message = run_client(hub_stand_in, tmp_path / "hf_home", TRAIN_AND_FAIL_TO_PUSH, argv=argv)
    assert message.startswith(f"the model is saved in {output_dir}, but pushing it to 'bare-name' failed")
    assert f"hf upload bare-name {output_dir}" in message
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "README.md").is_file()


PUSH_FROM_PYTHON = """
from modeling_contrastgeo import ContrastGeoModel
model = ContrastGeoModel.from_pretrained(ARGS["folder"])
model.push_to_hub("dialects/from-python")
model.save_pretrained(ARGS["copy"], push_to_hub=True, repo_id="dialects/saved-and-pushed")
RESULT = None
"""
PIPELINE_BY_REPO_ID = """
from transformers import pipeline
geolocator = pipeline("geolocation", model="dialects/from-python", trust_remote_code=True)
RESULT = geolocator(ARGS["posts"], top_k=2)
"""


@pytest.mark.slow
def test_model_push_to_hub_then_the_pipeline_by_repo_id(tiny, tmp_path, hub_stand_in):
    """Both of transformers' ways to push (push_to_hub, save_pretrained(push_to_hub=True)) carry the remote code, the
    tokenizer and the pipeline, so that `pipeline(..., model=repo_id)` works."""
    from transformers import pipeline

    output_dir = tmp_path / "run"
    train(geolocation_argv(tiny, output_dir))
    run_client(hub_stand_in, tmp_path / "hf_home", PUSH_FROM_PYTHON, folder=str(output_dir), copy=str(tmp_path / "copy"))
    for repo_id in ("dialects/from-python", "dialects/saved-and-pushed"):
        assert {"config.json", "model.safetensors", "modeling_contrastgeo.py", "pipeline_geolocation.py",
                "tokenizer.json"} <= set(hub_stand_in.files(repo_id)), repo_id
    assert (tmp_path / "copy" / "tokenizer.json").is_file()

    posts = ["Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht isch s Beschte"]
    expected = pipeline("geolocation", model=str(output_dir), trust_remote_code=True)(posts, top_k=2)
    loaded = run_client(hub_stand_in, tmp_path / "hf_home_reader", PIPELINE_BY_REPO_ID, cwd=tmp_path, posts=posts)
    assert loaded == json.loads(json.dumps(expected))
