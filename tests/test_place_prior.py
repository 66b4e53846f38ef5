"""The place prior: populations from the places or GeoNames, Bayes' rule in geolocate / predict_scores, bad input."""

import math

import numpy as np
import pytest
import torch

from modeling_contrastgeo import ContrastGeoConfig, ContrastGeoModel
from modeling_contrastgeo.gazetteer import load_geonames_cities
from modeling_contrastgeo.place_prior import DEFAULT_POPULATION, log_place_prior, place_populations, region_populations
from modeling_contrastgeo.places import normalize_places
from tests.tiny_models import SWISS_PLACES, make_tiny_encoder

POSTS = ["Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht isch s Beschte", "Bärn isch schön"]


def geonames_population(name):
    return next(city["population"] for city in load_geonames_cities(["CH"]) if city["city"] == name)


def test_populations_come_from_the_place_or_the_nearest_geonames_city():
    places = normalize_places([
        {"name": "Zürich", "latitude": 47.37, "longitude": 8.55},  # GeoNames' Zürich point is a few hundred m away
        {"name": "my village", "latitude": 47.0, "longitude": 8.0, "population": 1234},
        {"name": "mid-Pacific", "latitude": 0.0, "longitude": -150.0},
        {"name": "blank", "latitude": 46.95, "longitude": 7.45, "population": ""},  # a blank CSV cell: look it up
        {"name": "NaN", "latitude": 46.95, "longitude": 7.45, "population": float("nan")},
    ])
    populations = place_populations(places)
    assert populations.tolist() == [geonames_population("Zürich"), 1234.0, DEFAULT_POPULATION,
                                    geonames_population("Bern"), geonames_population("Bern")]


def world_population(name, country_code):
    return next(city["population"] for city in load_geonames_cities([country_code]) if city["city"] == name)


def test_a_place_named_like_a_nearby_town_has_that_towns_population():
    # The nearest GeoNames entries to these points are parts of the city: the district "Paris 04 Hôtel-de-Ville",
    # "Zürich (Kreis 4) / Aussersihl", and for the centre of Twitter's bounding box of Memphis the suburb Bartlett
    # (9 km; GeoNames' Memphis point is 12 km away).
    places = normalize_places([
        {"name": "Paris", "latitude": 48.8566, "longitude": 2.3522},
        {"name": "Memphis, TN", "latitude": 35.1335205, "longitude": -89.922029},
        {"name": "ZURICH", "latitude": 47.37752, "longitude": 8.52127},
        {"name": "Gretna, NE", "latitude": 41.14, "longitude": -96.24},  # 5,046 people: in cities5000 only
    ])
    assert place_populations(places).tolist() == [
        world_population("Paris", "FR"), world_population("Memphis", "US"), geonames_population("Zürich"),
        float(next(city["population"] for city in load_geonames_cities(["US"], min_population=5000)
                   if city["name"] == "Gretna, Nebraska, United States"))]
    # A namesake farther than 50 km is another place; a name that folds to nothing (another script) matches none.
    for name in ("Paris", "Лондон"):
        london = place_populations([{"name": name, "latitude": 51.5074, "longitude": -0.1278}])
        assert london.tolist() == [world_population("London", "GB")]


# GeoNames' cities15000 in Iceland, and their distance from a point in the middle of the island (64.9 N, 18.6 W):
# Akureyri 19,219 (90 km), Reykjavík 118,918 (179 km), Kópavogur 40,040 (181), Hafnarfjörður 31,525 (185),
# Keflavík 15,930 (214), Reykjanesbær 19,724 (215). The nearest city of another country, Tórshavn, is 668 km away.
MID_ICELAND = (64.9, -18.6)
REYKJAVIK = (64.13548, -21.89541)


def test_a_region_counts_the_people_of_its_cities():
    def population_of(radius_km):
        return region_populations([MID_ICELAND[0]], [MID_ICELAND[1]], [radius_km]).tolist()

    assert population_of(300) == [19219 + 118918 + 40040 + 31525 + 15930 + 19724]
    assert population_of(150) == [19219]
    # A radius below the nearest-city distance counts as that distance; no city there: the default population.
    assert population_of(0) == [DEFAULT_POPULATION]
    assert region_populations([0.0], [-150.0], [500]).tolist() == [DEFAULT_POPULATION]


def test_a_city_counts_for_the_nearest_label_only():
    # Reykjavík as a point (radius 0, so 25 km) takes its suburbs; Keflavík, 35 km from it, is nearer to Reykjavík
    # than to the centre of the island, so the island label does not count it either.
    populations = region_populations([MID_ICELAND[0], REYKJAVIK[0]], [MID_ICELAND[1], REYKJAVIK[1]], [300, 0])
    assert populations.tolist() == [19219, 118918 + 40040 + 31525]
    with pytest.raises(ValueError, match="2 latitudes, 2 longitudes and 1 radii"):
        region_populations([1.0, 2.0], [1.0, 2.0], [10.0])


def test_log_prior_is_normalised_and_proportional_to_population_to_the_weight():
    places = normalize_places([{"name": str(n), "latitude": 0.0, "longitude": 0.0, "population": n}
                               for n in (100, 300, 600)])
    for weight in (1.0, 0.5):
        log_prior = log_place_prior(places, "population", weight)
        assert math.isclose(np.logaddexp.reduce(log_prior), 0.0, abs_tol=1e-12)
        expected = np.array([100, 300, 600], dtype=np.float64) ** weight
        np.testing.assert_allclose(np.exp(log_prior), expected / expected.sum())
    np.testing.assert_allclose(np.exp(log_place_prior(places, "population", 0.0)), [1 / 3] * 3)
    # A population of 0 (GeoNames lists a few seats so) makes a place unlikely, not impossible.
    zero = normalize_places([{"name": "a", "latitude": 0, "longitude": 0, "population": 0},
                             {"name": "b", "latitude": 0, "longitude": 0, "population": 10}])
    assert np.isfinite(log_place_prior(zero)).all()
    with pytest.raises(ValueError, match="place prior 'census' is not one of"):
        log_place_prior(zero, "census")


@pytest.mark.parametrize("population, message", [
    ("many", "population must be a number, got 'many'"),
    (-5, "population must be a finite number >= 0, got -5.0"),
    (float("inf"), "population must be a finite number >= 0, got inf"),
])
def test_bad_populations_are_named(population, message):
    places = [{"name": "Bern", "latitude": 46.95, "longitude": 7.45},
              {"name": "Nowhere", "latitude": 46.0, "longitude": 7.0, "population": population}]
    # Checked when the gallery is read (a bad population is refused even by a model with the prior off) and again by
    # place_populations, which is public and may be given places that were never normalized.
    for check in (normalize_places, place_populations):
        with pytest.raises(ValueError, match=f"place 1 \\(Nowhere\\): {message}"):
            check(places)


def test_populations_are_read_as_numbers():
    places = normalize_places([{"name": "Bern", "latitude": 46.95, "longitude": 7.45, "population": "134591"},
                               {"name": "Thun", "latitude": 46.75, "longitude": 7.63, "population": ""}])
    assert places[0]["population"] == 134591.0 and places[1]["population"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"place_prior": "census"}, "place_prior='census' is not one of"),
    ({"place_prior_weight": -1.0}, "place_prior_weight must be a finite number >= 0"),
    ({"place_prior_weight": float("nan")}, "place_prior_weight must be a finite number >= 0"),
])
def test_bad_prior_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ContrastGeoConfig(**kwargs)


@pytest.fixture(scope="module")
def model(tmp_path_factory, minilm_path):
    encoder = make_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"), minilm_path)
    torch.manual_seed(0)
    places = [dict(place, population=population)
              for place, population in zip(SWISS_PLACES, (400000, 130000, 170000, 80000))]
    model = ContrastGeoModel.from_text_encoder(encoder, places=places, projection_dim=16, place_prior="population")
    model.config.probability_temperature = 0.7
    return model


def test_scores_follow_bayes_rule_with_the_prior(model):
    logits, places = model.predict_logits(POSTS)
    populations = torch.tensor([place["population"] for place in places], dtype=torch.float64)
    expected = (logits.double() / 0.7).softmax(-1) * populations
    expected = (expected / expected.sum(-1, keepdim=True)).float()
    with_prior, _ = model.predict_scores(POSTS)
    torch.testing.assert_close(with_prior, expected)
    without_prior, _ = model.predict_scores(POSTS, place_prior="none")
    torch.testing.assert_close(without_prior, (logits / 0.7).softmax(-1))
    assert not torch.allclose(with_prior, without_prior)

    top = model.geolocate(POSTS, top_k=4)
    for row, probabilities in zip(top, expected):
        assert [p["score"] for p in row] == pytest.approx(sorted(probabilities.tolist(), reverse=True), abs=1e-6)
    plain = model.geolocate(POSTS, top_k=4, place_prior=False)
    for row, probabilities in zip(plain, without_prior):
        assert [p["score"] for p in row] == pytest.approx(sorted(probabilities.tolist(), reverse=True), abs=1e-6)


def test_a_dominant_place_wins_unless_the_prior_is_off(model):
    places = [dict(place, population=1) for place in SWISS_PLACES]
    places[3]["population"] = 10 ** 12
    assert {row[0]["name"] for row in model.geolocate(POSTS, places=places)} == {SWISS_PLACES[3]["name"]}
    unweighted = model.geolocate(POSTS, places=places, place_prior="none")
    assert {row[0]["name"] for row in unweighted} != {SWISS_PLACES[3]["name"]}  # the text alone picks others
    model.config.place_prior_weight = 0.0
    try:
        assert model.place_log_prior(places) is None
        assert model.geolocate(POSTS, places=places) == unweighted
    finally:
        model.config.place_prior_weight = 1.0
    # Reranking keeps the prior in the contrastive candidates' probabilities.
    reranked = model.geolocate(POSTS, places=places, rerank=True, rerank_top_k=2, top_k=1)
    assert {row[0]["name"] for row in reranked} == {SWISS_PLACES[3]["name"]}


def test_models_without_a_prior_are_unchanged_and_a_bad_argument_is_named(model):
    assert ContrastGeoConfig().place_prior is None
    with pytest.raises(ValueError, match="place_prior='census' is not one of"):
        model.geolocate(POSTS, place_prior="census")


def test_prior_settings_and_populations_survive_save_and_load(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = ContrastGeoModel.from_pretrained(tmp_path)
    assert loaded.config.place_prior == "population" and loaded.config.place_prior_weight == 1.0
    assert [place["population"] for place in loaded.config.places] == [400000, 130000, 170000, 80000]
    torch.testing.assert_close(loaded.predict_scores(POSTS)[0], model.predict_scores(POSTS)[0])
