"""Prediction with a tiny ContrastGeoModel: `geolocate`, cached galleries, calibration, and the checks of posts,
labels and galleries."""

import numpy as np
import pandas as pd
import pytest
import torch

from modeling_contrastgeo import ContrastGeoModel
from tests.tiny_models import LABELS, POSTS, SWISS_PLACES, build_tiny_model, train_step_inputs


def test_gallery_cache_reused_and_invalidated_by_training(tiny_encoder):
    model = build_tiny_model(tiny_encoder)
    first = model.gallery_embeddings(SWISS_PLACES)
    assert model.gallery_embeddings(SWISS_PLACES) is first
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(**train_step_inputs(model), labels=LABELS).loss.backward()
    optimizer.step()
    second = model.gallery_embeddings(SWISS_PLACES)
    assert second is not first and not torch.allclose(first, second)


def test_geolocate_records(tiny_encoder):
    model = build_tiny_model(tiny_encoder)
    results = model.geolocate(POSTS, top_k=3)
    assert len(results) == len(POSTS)
    for records in results:
        assert [set(r) for r in records] == [{"name", "latitude", "longitude", "score"}] * 3
        scores = [r["score"] for r in records]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
    reranked = model.geolocate(POSTS, top_k=2, rerank=True, rerank_top_k=3)
    assert all(len(r) == 2 for r in reranked)
    assert model.geolocate(POSTS[0], top_k=10)[0][-1]["name"] in {p["name"] for p in SWISS_PLACES}


def test_temperature_fit_is_stored(tiny_encoder):
    model = build_tiny_model(tiny_encoder)
    temperature = model.fit_probability_temperature(POSTS, LABELS.tolist())
    assert model.config.probability_temperature == temperature
    logits, _ = model.predict_logits(POSTS)

    def nll(value):
        return torch.nn.functional.cross_entropy(logits.float() / value, LABELS).item()

    # The fitted temperature minimises the labelled posts' negative log-likelihood (away from the clamp bounds).
    assert 0.05 < temperature < 20.0
    assert all(nll(temperature) <= nll(temperature * factor) + 1e-6 for factor in (0.8, 0.95, 1.05, 1.25))
    names = [SWISS_PLACES[i]["name"] for i in LABELS.tolist()]
    assert model.fit_probability_temperature(POSTS, names) == pytest.approx(temperature)  # names work as indices


@pytest.mark.parametrize("labels, message", [
    ([0, 2, 1, 3.5], "label 3 must be a place's index or name, got float 3.5"),
    ([0, 2, 1, True], "label 3 must be a place's index or name, got bool True"),
    ([0, 2, 1, None], "label 3 must be a place's index or name, got NoneType None"),
    ([0, 2, 1, "Atlantis"], "label 3 \\('Atlantis'\\) is not the name of a place of the gallery"),
    ([0, 2, 1, 7], "label 3 \\(7\\) must index the 4 places"),
    ([0, 2, 1], "4 posts but 3 labels"),
    (1, "labels must be a list with one label per post, got int 1"),
])
def test_temperature_fit_names_a_bad_label(tiny_encoder, labels, message):
    with pytest.raises(ValueError, match=message):
        build_tiny_model(tiny_encoder).fit_probability_temperature(POSTS, labels)


@pytest.mark.parametrize(
    "texts, message",
    [(["ok", ""], "post 1 is empty"), (["   "], "post 0 is empty"), ([], "no posts"), ([3], "post 0 is not a string")],
)
def test_bad_posts(tiny_encoder, texts, message):
    model = build_tiny_model(tiny_encoder)
    with pytest.raises(ValueError, match=message):
        model.geolocate(texts)


def test_blank_posts_are_scored_only_when_allowed(tiny_encoder):
    model = build_tiny_model(tiny_encoder)
    rows = model.geolocate(["Grüezi", "   ", ""], top_k=2, allow_blank=True)
    assert len(rows) == 3 and all(len(row) == 2 for row in rows)
    # A blank post is encoded as the special tokens alone, whatever its whitespace.
    assert rows[1] == rows[2]
    logits, _ = model.predict_logits(["Grüezi", " "], allow_blank=True)
    assert logits.shape == (2, len(SWISS_PLACES)) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="post 1 is empty"):
        model.predict_logits(["Grüezi", " "])
    with pytest.raises(ValueError, match="post 0 is not a string"):
        model.geolocate([None], allow_blank=True)


@pytest.mark.parametrize(
    "place, message",
    [
        ({"name": "X", "latitude": 123.0, "longitude": 0.0}, "latitude 123.0 is outside"),
        ({"name": "X", "latitude": 0.0, "longitude": 181.0}, "longitude 181.0 is outside"),
        ({"name": "X", "latitude": float("nan"), "longitude": 0.0}, "latitude is nan"),
        ({"name": "X", "latitude": 0.0, "longitude": float("inf")}, "longitude is inf"),
        ({"latitude": 0.0, "longitude": 0.0}, "place 1 is missing name"),
        ({"name": " ", "latitude": 0.0, "longitude": 0.0}, "name is empty"),
        ({"name": 1.5, "latitude": 0.0, "longitude": 0.0}, "place 1: name must be text, got float 1.5"),
        ({"name": True, "latitude": 0.0, "longitude": 0.0}, "place 1: name must be text, got bool True"),
        ({"name": "X", "latitude": "north", "longitude": 0.0}, "must be numbers"),
        ({"name": "X", "latitude": True, "longitude": 0.0}, "must be numbers, got True, 0.0"),
        (dict(SWISS_PLACES[0]), r"place 1 repeats place 0 \(Zürich, Switzerland, 47.36667, 8.55\)"),
    ],
)
def test_bad_places(tiny_encoder, place, message):
    model = build_tiny_model(tiny_encoder)
    with pytest.raises(ValueError, match=message):
        model.geolocate(["Grüezi"], places=[SWISS_PLACES[0], place])


def test_galleries_read_from_tables(tiny_encoder, caplog):
    model = build_tiny_model(tiny_encoder)
    codes = pd.DataFrame({"name": [10001, 94103], "latitude": [40.75, 37.77], "longitude": [-73.99, -122.41]})
    assert {r["name"] for r in model.geolocate(["Grüezi"], places=codes, top_k=2)[0]} == {"10001", "94103"}
    with pytest.raises(ValueError, match="this mapping holds single values \\(one place\\?\\): wrap it in a list"):
        model.geolocate(["Grüezi"], places=dict(SWISS_PLACES[0]))
    twins = [SWISS_PLACES[0], SWISS_PLACES[1], {**SWISS_PLACES[1], "latitude": 10.0}]
    # With the prior on, one geolocate call passes the gallery through several steps: it is still logged once.
    model_with_prior = build_tiny_model(tiny_encoder, place_prior="population")
    with caplog.at_level("WARNING", logger="modeling_contrastgeo.places"):
        model_with_prior.geolocate(["Grüezi"], places=twins)
    shared = [record for record in caplog.records if "share a name" in record.getMessage()]
    assert len(shared) == 1 and "place 2" in shared[0].getMessage()
    assert "1 place(s) share a name with an earlier one" in shared[0].getMessage()


def test_a_resolved_gallery_is_checked_again_once_edited(tiny_encoder):
    model = build_tiny_model(tiny_encoder)
    gallery = model.resolve_places(SWISS_PLACES)
    assert model.resolve_places(gallery) is gallery
    model.set_places(gallery)
    gallery[1]["latitude"] = 95.0
    assert model.config.places[1]["latitude"] == SWISS_PLACES[1]["latitude"]  # the saved label set is its own copy
    with pytest.raises(ValueError, match="place 1 \\(.*\\): latitude 95.0 is outside"):
        model.geolocate(["Grüezi"], places=gallery)


@pytest.mark.parametrize(
    "posts, message",
    [(pd.DataFrame({"text": ["Grüezi"]}), "got a DataFrame: pass its text column"),
     ({"text": "Grüezi"}, "got a dict \\(iterating it gives its keys\\)"),
     ({"Grüezi", "Bärn"}, "got a set: it has no order")],
)
def test_posts_in_containers_that_do_not_iterate_as_posts(tiny_encoder, posts, message):
    model = build_tiny_model(tiny_encoder)
    with pytest.raises(ValueError, match=message):
        model.geolocate(posts)
    assert len(model.geolocate(pd.Series(["Grüezi", "Bärn"]))) == 2  # a column is fine


def test_empty_gallery_and_bad_latlon_tensor(tiny_encoder):
    model = build_tiny_model(tiny_encoder, location_mode="coordinates")
    with pytest.raises(ValueError, match="gallery of places is empty"):
        model.geolocate(["Grüezi"], places=[])
    with pytest.raises(ValueError, match="latitude"):
        model.get_location_features(place_latlon=torch.tensor([[95.0, 8.0]]))
    for arguments in ({"top_k": 0}, {"top_k": True}, {"top_k": 2.0}, {"batch_size": 0}, {"rerank_top_k": -1}):
        [(name, value)] = arguments.items()
        with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value!r}"):
            model.geolocate(["Grüezi"], rerank=True, **arguments)
    for method in (model.encode_posts, model.predict_logits):
        with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
            method(["Grüezi"], batch_size=0)
    assert len(model.geolocate(["Grüezi"], top_k=np.int64(2))[0]) == 2  # numpy integers are whole numbers too


def test_model_without_saved_places_asks_for_a_gallery(tiny_encoder):
    torch.manual_seed(0)
    model = ContrastGeoModel.from_text_encoder(tiny_encoder, projection_dim=16)
    with pytest.raises(ValueError, match="no saved places"):
        model.geolocate(["Grüezi"])
    assert model.geolocate(["Grüezi"], places=SWISS_PLACES, top_k=1)[0][0]["name"]


def test_spec_galleries_are_resolved_once_and_cannot_be_edited_through_a_result(tiny_encoder):
    from modeling_contrastgeo.places import places_fingerprint

    model = build_tiny_model(tiny_encoder, location_mode="coordinates")
    first = model.resolve_places("geonames:CH")
    name = first[0]["name"]
    first[0]["name"] = "edited"
    again = model.resolve_places(" geonames:CH ")
    assert again[0]["name"] == name and again == model.resolve_places("geonames:CH")
    # The remembered fingerprint is the gallery's content hash.
    assert places_fingerprint(again) == places_fingerprint([dict(place) for place in again])
    assert model.geolocate(["Grüezi"], places="geonames:CH", top_k=3) == model.geolocate(
        ["Grüezi"], places=list(again), top_k=3)
