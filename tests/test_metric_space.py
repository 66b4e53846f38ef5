"""The geolocation metric on the Hub: its Space (module named after the Space, card, widget) pushed to the Hub
stand-in and loaded back with `evaluate.load("<user>/<space>")`; the widget's scoring."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from contrastgeo.metrics import GEOLOCATION_METRIC_PATH, compute_geolocation_metrics
from tests.hub_clients import run_client

PUSH_THEN_LOAD = """
import evaluate
from contrastgeo.metrics.__main__ import main as metrics_cli
status = metrics_cli(["push", "--repo-id", "metrics/geo-error"])
metric = evaluate.load("metrics/geo-error", config_name="labels")
RESULT = {"status": status, "module": type(metric).__module__, "scores": metric.compute(**ARGS["examples"])}
"""
EXAMPLES = {"predicted_latitude": [48.8566, 51.5072], "predicted_longitude": [2.3522, -0.1276],
            "true_latitude": [51.5074, 51.5074], "true_longitude": [-0.1278, -0.1278],
            "predictions": [1, 0], "references": [0, 0]}


@pytest.mark.slow
def test_pushed_metric_space_loads_with_evaluate_by_repo_id(hub_stand_in, tmp_path):
    result = run_client(hub_stand_in, tmp_path / "hf_home", PUSH_THEN_LOAD, examples=EXAMPLES)
    assert result["status"] == 0
    assert "geo-error" in result["module"]  # evaluate imported the module it downloaded, not the local folder
    assert result["scores"] == pytest.approx(compute_geolocation_metrics(
        EXAMPLES["predicted_latitude"], EXAMPLES["predicted_longitude"], EXAMPLES["true_latitude"],
        EXAMPLES["true_longitude"], predictions=EXAMPLES["predictions"], references=EXAMPLES["references"]))
    space = hub_stand_in.files("metrics/geo-error", repo_type="space")
    assert set(space) == {"geo-error.py", "README.md", "app.py", "requirements.txt"}
    assert b"sdk: gradio" in space["README.md"] and b"app_file: app.py" in space["README.md"]


def test_metric_push_refuses_offline_and_bad_ids_before_any_upload(monkeypatch, capsys):
    from contrastgeo.metrics.__main__ import main as metrics_cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert metrics_cli(["push", "--repo-id", "metrics/geo-error"]) == 1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert metrics_cli(["push", "--repo-id", "a/b/c"]) == 1
    assert "is not a Hub repository id" in capsys.readouterr().err


@pytest.fixture(scope="module")
def widget():
    # By file, under a name of its own: `import app` would find the demo Space's app.py, which test_space imports.
    spec = importlib.util.spec_from_file_location("geolocation_metric_app", Path(GEOLOCATION_METRIC_PATH) / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_widget_scores_its_table_with_the_metric(widget):
    columns = widget.COORDINATE_COLUMNS + widget.LABEL_COLUMNS
    table = pd.DataFrame(widget.EXAMPLE_ROWS, columns=columns)
    expected = compute_geolocation_metrics(*(table[name].tolist() for name in widget.COORDINATE_COLUMNS),
                                           predictions=[1, 0], references=[0, 0])
    assert widget.score_table(table) == pytest.approx(expected)
    coordinates_only = table.assign(predicted_label="", true_label="")
    assert "top1" not in widget.score_table(coordinates_only)
    assert widget.score_table(coordinates_only)["mean_km"] == pytest.approx(expected["mean_km"])
    assert widget.build_demo() is not None


@pytest.mark.parametrize("change, message", [
    ({"predicted_latitude": [123.0, 51.5072]}, r"predicted_latitudes\[0\] = 123.0 is outside \[-90, 90\]"),
    ({"true_longitude": [None, -0.1278]}, r"true_longitude is empty in row\(s\) \[1\]"),
    ({"true_label": [0, ""]}, r"labels are given in some rows but not in row\(s\) \[2\]"),
])
def test_widget_names_the_bad_cell(widget, change, message):
    table = pd.DataFrame(widget.EXAMPLE_ROWS, columns=widget.COORDINATE_COLUMNS + widget.LABEL_COLUMNS)
    with pytest.raises(ValueError, match=message):
        widget.score_table(table.assign(**change))
