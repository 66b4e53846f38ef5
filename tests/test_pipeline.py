"""The `geolocation` pipeline returns exactly what `geolocate` returns: from a saved folder (remote code), from a
model object (the installed package's registration), in a subprocess where the repository's packages are hidden,
and with real MiniLM weights."""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import pipeline

import modeling_contrastgeo
from modeling_contrastgeo import ContrastGeoModel
from modeling_contrastgeo.pipeline_geolocation import GEOLOCATION_TASK, geolocation_custom_pipelines
from tests.tiny_models import ALPINE_PLACES as PLACES, MIDWEST_PLACES as OTHER_PLACES, make_tiny_encoder

POSTS = [
    "Grüezi mitenand, hüt gits Fondue",
    "Servus, heute in der Oper gewesen",
    "Going to the Husker game tonight!",
    "Oans, zwoa, g'suffa auf der Wiesn",
    "Snow again on the lake, classes cancelled",
]
HIDDEN_PACKAGES = ("modeling_contrastgeo", "contrastgeo", "datasets_scripts")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_path):
    encoder = make_tiny_encoder(tmp_path_factory.mktemp("tiny_encoder"), minilm_path)
    torch.manual_seed(0)
    model = ContrastGeoModel.from_text_encoder(encoder, places=PLACES)
    folder = tmp_path_factory.mktemp("tiny_contrastgeo")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(saved_model):
    return ContrastGeoModel.from_pretrained(saved_model).eval()


@pytest.fixture(scope="module")
def folder_pipeline(saved_model):
    return pipeline(GEOLOCATION_TASK, model=str(saved_model), trust_remote_code=True)


def test_saved_folder_declares_the_pipeline(saved_model):
    config = json.loads((saved_model / "config.json").read_text())
    assert config.get("custom_pipelines") == geolocation_custom_pipelines(), (
        "ContrastGeoModel.save_pretrained must write custom_pipelines into config.json (docs/PIPELINE_HOOK.md)"
    )
    assert (saved_model / "pipeline_geolocation.py").is_file(), "the pipeline file must travel with the model"


def test_pipeline_from_saved_folder_returns_geolocate_records(folder_pipeline, model):
    expected = model.geolocate(POSTS)
    assert folder_pipeline(POSTS) == expected
    assert len(expected) == len(POSTS) and all(len(records) == 5 for records in expected)
    assert {record["name"] for records in expected for record in records} <= {place["name"] for place in PLACES}
    assert folder_pipeline(POSTS[1], top_k=2) == model.geolocate(POSTS[1:2], top_k=2)[0]
    assert folder_pipeline(POSTS, top_k=3, batch_size=2) == model.geolocate(POSTS, top_k=3, batch_size=2)
    assert folder_pipeline(POSTS, places=OTHER_PLACES, top_k=2) == model.geolocate(POSTS, places=OTHER_PLACES, top_k=2)
    reranked = folder_pipeline(POSTS, rerank=True, rerank_top_k=4, top_k=3)
    assert reranked == model.geolocate(POSTS, rerank=True, rerank_top_k=4, top_k=3)
    assert reranked != model.geolocate(POSTS, top_k=3), "rerank=True must reach geolocate"
    heavy = [dict(place, population=10 ** 12 if index == 1 else 1) for index, place in enumerate(OTHER_PLACES)]
    with_prior = folder_pipeline(POSTS, places=heavy, place_prior="population", top_k=2)
    assert with_prior == model.geolocate(POSTS, places=heavy, place_prior="population", top_k=2)
    assert with_prior != model.geolocate(POSTS, places=heavy, top_k=2), "place_prior must reach geolocate"


def test_pipeline_for_a_model_object_with_parameters_at_construction(model, tmp_path):
    geolocator = pipeline(GEOLOCATION_TASK, model=model, top_k=2, places=OTHER_PLACES, batch_size=2)
    # Importing the package registers the task (docs/PIPELINE_HOOK.md), with the package's own class.
    assert type(geolocator) is getattr(modeling_contrastgeo, "GeolocationPipeline", None)
    assert geolocator(POSTS) == model.geolocate(POSTS, places=OTHER_PLACES, top_k=2, batch_size=2)
    assert geolocator(POSTS, top_k=1) == model.geolocate(POSTS, places=OTHER_PLACES, top_k=1, batch_size=2)

    geolocator.save_pretrained(tmp_path)  # the pipeline's own way to save: a folder the pipeline factory loads
    reloaded = pipeline(GEOLOCATION_TASK, model=str(tmp_path), trust_remote_code=True)
    assert reloaded(POSTS, top_k=3) == model.geolocate(POSTS, top_k=3)


def test_pipeline_streams_iterables_in_groups(model):
    geolocator = pipeline(GEOLOCATION_TASK, model=model, top_k=2, batch_size=2)
    geolocator.min_posts_per_call = 3  # groups of 4 posts (a multiple of the batch size): 11 posts make 3 groups
    many_posts = [f"{POSTS[index % len(POSTS)]} #{index}" for index in range(11)]
    stream = geolocator(post for post in many_posts)
    assert inspect.isgenerator(stream)
    groups = [many_posts[start:start + 4] for start in range(0, len(many_posts), 4)]
    assert list(stream) == [records for group in groups for records in model.geolocate(group, top_k=2, batch_size=2)]

    many_posts[9] = "   "
    stream = geolocator(iter(many_posts))
    expected = [records for group in groups[:2] for records in model.geolocate(group, top_k=2, batch_size=2)]
    assert [next(stream) for _ in range(8)] == expected
    with pytest.raises(ValueError, match="post 9 is empty"):  # counted from the start of the input
        next(stream)


def test_pipeline_rejects_bad_posts(model):
    geolocator = pipeline(GEOLOCATION_TASK, model=model)
    with pytest.raises(ValueError, match="post 1 is empty"):
        geolocator([POSTS[0], ""])
    with pytest.raises(ValueError, match="post 2 is not a string"):
        geolocator([POSTS[0], POSTS[1], 42])
    with pytest.raises(ValueError, match="batch_size"):
        geolocator(POSTS, batch_size=0)
    with pytest.raises(ValueError, match="got a dict \\(iterating it gives its keys\\)"):
        geolocator({"text": POSTS[0], "other": POSTS[1]})
    # As in geolocate, allow_blank scores a blank post instead of refusing it.
    assert geolocator([POSTS[0], " "], allow_blank=True, top_k=2) == model.geolocate([POSTS[0], " "], top_k=2,
                                                                                      allow_blank=True)


SUBPROCESS_SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys

    class HidePackages(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {hidden!r}:
                raise ModuleNotFoundError(f"{{name}} is hidden in this test", name=name)

    sys.meta_path.insert(0, HidePackages())
    sys.path = [entry for entry in sys.path if entry.rstrip("/") != {repo!r}]
    try:
        import modeling_contrastgeo
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the package is still importable")

    from transformers import pipeline

    geolocator = pipeline("geolocation", model=sys.argv[1], trust_remote_code=True)
    posts = json.loads(sys.argv[2])
    print(json.dumps({{
        "module": type(geolocator).__module__,
        "label_set": geolocator(posts, top_k=3),
        "geonames_ch": geolocator(posts, places="geonames:CH", top_k=2),
    }}))
""")


@pytest.mark.slow
def test_pipeline_in_a_subprocess_without_the_package(saved_model, model, tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = SUBPROCESS_SCRIPT.format(hidden=HIDDEN_PACKAGES, repo=repo)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    completed = subprocess.run(
        [sys.executable, "-c", script, str(saved_model), json.dumps(POSTS)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["module"].startswith("transformers_modules."), result["module"]
    assert result["label_set"] == model.geolocate(POSTS, top_k=3)
    assert result["geonames_ch"] == model.geolocate(POSTS, places="geonames:CH", top_k=2)
    assert all(record["name"].endswith("Switzerland") for records in result["geonames_ch"] for record in records)


@pytest.mark.slow
def test_pipeline_with_minilm_weights(minilm_path, tmp_path):
    ContrastGeoModel.from_text_encoder(minilm_path, places=PLACES + OTHER_PLACES).save_pretrained(tmp_path)
    geolocator = pipeline(GEOLOCATION_TASK, model=str(tmp_path), trust_remote_code=True)
    # Loaded like the pipeline's model: weights read from disk sit at other memory alignments than freshly built
    # ones, which moves the last bits of some float sums.
    minilm_model = ContrastGeoModel.from_pretrained(tmp_path).eval()
    expected = minilm_model.geolocate(POSTS, top_k=3)
    assert geolocator(POSTS, top_k=3) == expected
    assert geolocator(POSTS[2], places=OTHER_PLACES, top_k=1) == minilm_model.geolocate(
        POSTS[2], places=OTHER_PLACES, top_k=1)[0]
