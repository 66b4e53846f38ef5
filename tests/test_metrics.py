"""Tests for the geolocation metric (function and `evaluate` module)."""

import math
import os
import socket
from pathlib import Path

# evaluate and huggingface_hub read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import evaluate  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from contrastgeo.metrics import (  # noqa: E402
    GEOLOCATION_METRIC_PATH,
    compute_geolocation_metrics,
    haversine_km,
)

EARTH_RADIUS_KM = 6371.0088
REPO_ROOT = Path(__file__).resolve().parents[1]
LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)


def law_of_cosines_km(lat1, lon1, lat2, lon2):
    """Independent reference formula (spherical law of cosines), accurate away from tiny distances."""
    phi1, lambda1, phi2, lambda2 = map(math.radians, (lat1, lon1, lat2, lon2))
    cosine = math.sin(phi1) * math.sin(phi2) + math.cos(phi1) * math.cos(phi2) * math.cos(lambda2 - lambda1)
    return EARTH_RADIUS_KM * math.acos(cosine)


def metrics(latitudes_pred, longitudes_pred, latitudes_true, longitudes_true, **kwargs):
    return compute_geolocation_metrics(latitudes_pred, longitudes_pred, latitudes_true, longitudes_true, **kwargs)


# --- haversine -----------------------------------------------------------------------------------------------


def test_london_paris_matches_law_of_cosines():
    distance = float(haversine_km(*LONDON, *PARIS))
    assert distance == pytest.approx(law_of_cosines_km(*LONDON, *PARIS), abs=0.5)
    assert distance == pytest.approx(343.5, abs=0.5)
    assert float(haversine_km(*PARIS, *LONDON)) == pytest.approx(distance, abs=1e-9)


@pytest.mark.parametrize(
    "point, antipode",
    [((0.0, 0.0), (0.0, 180.0)), ((45.0, 10.0), (-45.0, -170.0)), ((90.0, 0.0), (-90.0, 0.0))],
)
def test_antipodes_are_half_circumference(point, antipode):
    assert float(haversine_km(*point, *antipode)) == pytest.approx(math.pi * EARTH_RADIUS_KM, abs=1e-6)


@pytest.mark.parametrize("point, same_point", [((12.3, -45.6), (12.3, -45.6)), ((90.0, 0.0), (90.0, 120.0))])
def test_zero_distance(point, same_point):
    assert float(haversine_km(*point, *same_point)) == pytest.approx(0.0, abs=1e-6)


def test_haversine_broadcasts():
    distances = haversine_km(np.array([[0.0], [10.0]]), 0.0, 0.0, np.array([0.0, 1.0, 2.0]))
    assert distances.shape == (2, 3)
    # On the equator the arc is R times the longitude difference in radians.
    np.testing.assert_allclose(distances[0], EARTH_RADIUS_KM * np.radians([0.0, 1.0, 2.0]), atol=1e-9)


# --- distance metrics ----------------------------------------------------------------------------------------


def test_mean_median_and_thresholds_on_equator_example():
    longitude_errors = np.array([0.0, 1.0, 2.0, 10.0])  # 0, 111.2, 222.4, 1111.9 km
    results = metrics([0.0] * 4, [0.0] * 4, [0.0] * 4, longitude_errors)
    arcs = EARTH_RADIUS_KM * np.radians(longitude_errors)
    assert results["mean_km"] == pytest.approx(arcs.sum() / 4, abs=1e-9)
    assert results["median_km"] == pytest.approx((arcs[1] + arcs[2]) / 2, abs=1e-9)
    assert results["num_examples"] == 4
    expected_accuracy = {
        "acc@1km": 0.25, "acc@25km": 0.25, "acc@161km": 0.5, "acc@200km": 0.5, "acc@750km": 0.75, "acc@2500km": 1.0,
    }
    assert {key: results[key] for key in expected_accuracy} == expected_accuracy
    assert "top1" not in results and "top5" not in results and "macro_acc" not in results
    assert all(type(value) is float for key, value in results.items() if key != "num_examples")


def test_thresholds_are_inclusive():
    distance = float(haversine_km(*LONDON, *PARIS))
    at_distance = metrics([PARIS[0]], [PARIS[1]], [LONDON[0]], [LONDON[1]], distance_thresholds_km=[distance])
    just_below = metrics(
        [PARIS[0]], [PARIS[1]], [LONDON[0]], [LONDON[1]], distance_thresholds_km=[np.nextafter(distance, 0.0)]
    )
    assert [value for key, value in at_distance.items() if key.startswith("acc@")] == [1.0]
    assert [value for key, value in just_below.items() if key.startswith("acc@")] == [0.0]
    exact = metrics([10.0, 10.0], [20.0, 20.0], [10.0, 10.5], [20.0, 20.0], distance_thresholds_km=[0])
    assert exact["acc@0km"] == 0.5


def test_coordinate_bounds_are_accepted():
    results = metrics([90.0, -90.0], [180.0, -180.0], [-90.0, 90.0], [-180.0, 180.0])
    assert results["mean_km"] == pytest.approx(math.pi * EARTH_RADIUS_KM, abs=1e-6)


# --- label metrics -------------------------------------------------------------------------------------------

# Class 0: four examples, all right; class 1: two examples, both wrong. Micro top-1 = 4/6, macro = (1 + 0) / 2.
REFERENCES = [0, 0, 0, 0, 1, 1]
PREDICTIONS = [0, 0, 0, 0, 2, 0]
TOP_K = [
    [0, 1, 2, 3, 4, 5],
    [0, 2, 1, 3, 4, 5],
    [0, 1, 2, 3, 4, 5],
    [0, 3, 4, 5, 1, 2],
    [2, 0, 3, 4, 1, 5],  # reference at rank 5: a top-5 hit
    [0, 2, 3, 4, 5, 1],  # reference at rank 6: a miss
]
ZEROS = [0.0] * len(REFERENCES)


def test_top1_macro_top5():
    results = metrics(
        ZEROS, ZEROS, ZEROS, ZEROS, predictions=PREDICTIONS, references=REFERENCES, top_k_predictions=TOP_K
    )
    assert results["top1"] == pytest.approx(4 / 6)
    assert results["macro_acc"] == pytest.approx(0.5)
    assert results["top5"] == pytest.approx(5 / 6)
    assert results["acc@1km"] == 1.0


def test_top5_with_fewer_than_five_columns_uses_the_given_columns():
    top_two = [row[:2] for row in TOP_K]  # reference found in the first two columns for rows 0-3 only
    results = metrics(
        ZEROS, ZEROS, ZEROS, ZEROS, predictions=PREDICTIONS, references=REFERENCES, top_k_predictions=top_two
    )
    assert results["top5"] == pytest.approx(4 / 6)


def test_labels_without_top_k_have_no_top5():
    results = metrics(ZEROS, ZEROS, ZEROS, ZEROS, predictions=PREDICTIONS, references=REFERENCES)
    assert "top5" not in results and results["top1"] == pytest.approx(4 / 6)


# --- bad input -----------------------------------------------------------------------------------------------

GOOD = dict(
    predicted_latitudes=[1.0, 2.0, 3.0],
    predicted_longitudes=[1.0, 2.0, 3.0],
    true_latitudes=[1.0, 2.0, 3.0],
    true_longitudes=[1.0, 2.0, 3.0],
)


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(predicted_latitudes=[1.0, 2.0]), r"lengths differ"),
        (dict(true_latitudes=[1.0, float("nan"), 3.0]), r"true_latitudes\[1\].*finite"),
        (dict(predicted_longitudes=[1.0, 2.0, float("inf")]), r"predicted_longitudes\[2\].*finite"),
        (dict(true_latitudes=[1.0, 90.5, 3.0]), r"true_latitudes\[1\] = 90.5 is outside \[-90, 90\]"),
        (dict(predicted_latitudes=[-91.0, 2.0, 3.0]), r"predicted_latitudes\[0\].*outside"),
        (dict(true_longitudes=[1.0, 2.0, -180.1]), r"true_longitudes\[2\] = -180.1 is outside \[-180, 180\]"),
        (dict(predicted_longitudes=[181.0, 2.0, 3.0]), r"predicted_longitudes\[0\].*outside"),
        (dict(predicted_latitudes=[[1.0, 2.0, 3.0]]), r"predicted_latitudes must be 1-D"),
        (dict(true_longitudes=["a", "b", "c"]), r"true_longitudes must be a 1-D sequence of numbers"),
        (dict(predictions=[0, 1, 2]), r"references is missing"),
        (dict(references=[0, 1, 2]), r"predictions is missing"),
        (dict(predictions=[0, 1], references=[0, 1, 2]), r"predictions has 2 values"),
        (dict(predictions=[0, 1, 2], references=[0, 1.0, float("nan")]), r"references\[1\] = 1.0 is not an integer"),
        (dict(predictions=[0, True, 2], references=[0, 1, 2]), r"predictions\[1\] = True is not an integer"),
        (dict(predictions=[0, None, 2], references=[0, 1, 2]), r"predictions\[1\] = None is not an integer"),
        (dict(predictions=[0, 2 ** 70, 2], references=[0, 1, 2]), r"predictions holds a class id beyond the 64-bit"),
        (dict(predictions=[0, 1, 2], references=[0, 1, 2], top_k_predictions=[0, 1, 2]), r"must be 2-D"),
        (dict(predictions=[0, 1, 2], references=[0, 1, 2], top_k_predictions=[[0, 1]] * 2), r"must have shape"),
        (dict(top_k_predictions=[[0, 1]] * 3), r"top_k_predictions needs references"),
        (dict(predictions=[0, 1, 2], references=[0, 1, 2], top_k_predictions=[[0, 1], [0], [1, 0]]), r"rectangular"),
        (dict(distance_thresholds_km=[-1.0]), r"distance_thresholds_km\[0\] = -1.0 must be"),
        (dict(distance_thresholds_km=[10.0, float("nan")]), r"distance_thresholds_km\[1\]"),
        (dict(distance_thresholds_km=[161, 161.0]), r"duplicate thresholds"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        compute_geolocation_metrics(**{**GOOD, **override})


def test_empty_input_raises():
    with pytest.raises(ValueError, match="empty"):
        compute_geolocation_metrics([], [], [], [])


# --- evaluate module -----------------------------------------------------------------------------------------


COORDINATE_NAMES = ("predicted_latitude", "predicted_longitude", "true_latitude", "true_longitude")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def random_examples():
    rng = np.random.default_rng(0)
    num_examples, num_classes = 40, 7
    references = rng.integers(0, num_classes, num_examples)
    top_k = np.stack([rng.permutation(num_classes) for _ in range(num_examples)])
    return dict(
        predicted_latitude=rng.uniform(-90, 90, num_examples).tolist(),
        predicted_longitude=rng.uniform(-180, 180, num_examples).tolist(),
        true_latitude=rng.uniform(-90, 90, num_examples).tolist(),
        true_longitude=rng.uniform(-180, 180, num_examples).tolist(),
        predictions=top_k[:, 0].tolist(),
        references=references.tolist(),
        top_k_predictions=top_k.tolist(),
    )


def expected_from_function(examples, with_labels):
    return compute_geolocation_metrics(
        examples["predicted_latitude"],
        examples["predicted_longitude"],
        examples["true_latitude"],
        examples["true_longitude"],
        predictions=examples["predictions"] if with_labels else None,
        references=examples["references"] if with_labels else None,
        top_k_predictions=examples["top_k_predictions"] if with_labels else None,
    )


def test_evaluate_load_labels_config_matches_function(no_network, random_examples, tmp_path):
    metric = evaluate.load(GEOLOCATION_METRIC_PATH, config_name="labels", cache_dir=str(tmp_path))
    examples = dict(random_examples)
    top_k = examples.pop("top_k_predictions")
    expected = expected_from_function(random_examples, with_labels=True)
    assert 0.0 < expected["top1"] < expected["top5"] < 1.0
    assert metric.compute(**examples, top_k_predictions=top_k) == pytest.approx(expected)

    for start in range(0, 40, 15):
        metric.add_batch(**{name: values[start : start + 15] for name, values in examples.items()})
    assert metric.compute(top_k_predictions=top_k) == pytest.approx(expected)

    for index in range(40):
        metric.add(
            prediction=examples["predictions"][index],
            reference=examples["references"][index],
            **{name: examples[name][index] for name in examples if name not in ("predictions", "references")},
        )
    assert metric.compute(top_k_predictions=top_k) == pytest.approx(expected)


def test_evaluate_load_relative_path_coordinates_config(no_network, random_examples, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    metric = evaluate.load("contrastgeo/metrics/geolocation", cache_dir=str(tmp_path))
    coordinates = {name: random_examples[name] for name in COORDINATE_NAMES}
    expected = expected_from_function(random_examples, with_labels=False)
    assert metric.compute(**coordinates) == pytest.approx(expected)
    metric.add_batch(**{name: values[:25] for name, values in coordinates.items()})
    metric.add_batch(**{name: values[25:] for name, values in coordinates.items()})
    assert metric.compute(distance_thresholds_km=[500]) == pytest.approx(
        compute_geolocation_metrics(*coordinates.values(), distance_thresholds_km=[500])
    )


def test_evaluate_module_rejects_mismatched_configs(no_network, random_examples, tmp_path):
    coordinates_metric = evaluate.load(GEOLOCATION_METRIC_PATH, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="config_name='labels'"):
        coordinates_metric.compute(**{k: v for k, v in random_examples.items() if k != "top_k_predictions"})
    labels_metric = evaluate.load(GEOLOCATION_METRIC_PATH, config_name="labels", cache_dir=str(tmp_path))
    coordinates = {name: random_examples[name] for name in COORDINATE_NAMES}
    with pytest.raises(ValueError, match="needs both predictions and references"):
        labels_metric.compute(**coordinates)
    bad = dict(coordinates, true_latitude=[100.0] + coordinates["true_latitude"][1:])
    with pytest.raises(ValueError, match=r"true_latitude\[0\] = 100.0 is outside"):  # the argument's own name
        coordinates_metric.compute(**bad)
    with pytest.raises(ValueError, match="unknown config_name"):
        evaluate.load(GEOLOCATION_METRIC_PATH, config_name="regression", cache_dir=str(tmp_path))


def test_evaluate_module_checks_values_before_evaluate_casts_them(no_network, random_examples, tmp_path):
    """evaluate casts inputs to the features (int64 labels) first: 1.7 would become 1 and "Paris" a bare error."""
    metric = evaluate.load(GEOLOCATION_METRIC_PATH, config_name="labels", cache_dir=str(tmp_path))
    examples = {name: values[:3] for name, values in random_examples.items() if name != "top_k_predictions"}
    for override, message in [
        (dict(predictions=[1.7, 2, 3]), r"predictions\[0\] = 1.7 is not an integer class id"),
        (dict(references=[1, None, 3]), r"references\[1\] = None is not an integer class id"),
        (dict(predictions=["Paris", "Rome", "Oslo"]), r"predictions\[0\] = 'Paris' is not an integer class id"),
        (dict(predicted_latitude=["abc", 2.0, 3.0]), r"predicted_latitude must be a 1-D sequence of numbers"),
        (dict(true_longitude=[1.0, float("nan"), 3.0]), r"true_longitude\[1\] is nan"),
        (dict(true_longitude=None), r"true_longitude missing: give all of"),
    ]:
        with pytest.raises(ValueError, match=message):
            metric.compute(**{**examples, **override})
        with pytest.raises(ValueError, match=message):
            metric.add_batch(**{**examples, **override})
    with pytest.raises(ValueError, match=r"prediction\[0\] = 1.7 is not an integer class id"):
        metric.add(prediction=1.7, reference=1, **{name: examples[name][0] for name in COORDINATE_NAMES})
    assert metric.compute(**examples)["num_examples"] == 3  # nothing half-added by the refused calls


def test_expected_calibration_error_by_hand():
    from contrastgeo.metrics import expected_calibration_error

    # Bins of width 0.5: {0.2 (wrong), 0.4 (right)} -> |0.5 - 0.3| = 0.2; {0.9 (right), 1.0 (right)} -> |1 - 0.95|.
    confidences, correct = [0.2, 0.4, 0.9, 1.0], [False, True, True, True]
    assert expected_calibration_error(confidences, correct, num_bins=2) == pytest.approx((2 * 0.2 + 2 * 0.05) / 4)
    assert expected_calibration_error([0.7, 0.7], [1, 0], num_bins=15) == pytest.approx(0.2)
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0
    with pytest.raises(ValueError, match="not a probability"):
        expected_calibration_error([1.5], [1])
    with pytest.raises(ValueError, match="not a probability"):
        expected_calibration_error([float("nan")], [1])
    with pytest.raises(ValueError, match="at least one"):
        expected_calibration_error([], [])
