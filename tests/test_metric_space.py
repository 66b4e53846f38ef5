"""The geolocation metric on the Hub: its Space (module named after the Space, card, widget) pushed to the Hub
stand-in and loaded back with `evaluate.load("<user>/<space>")`; the widget's scoring, and its page in Chromium."""

import importlib.util
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from contrastgeo.metrics import GEOLOCATION_METRIC_PATH, compute_geolocation_metrics
from tests.browser import chromium_page, free_port, served_app
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
    ({"predicted_latitude": [123.0, 51.5072]}, r"predicted_latitude\[0\] = 123.0 is outside \[-90, 90\]"),
    ({"true_longitude": [None, -0.1278]}, r"true_longitude is empty in row\(s\) \[1\]"),
    ({"true_label": [0, ""]}, r"labels are given in some rows but not in row\(s\) \[2\]"),
])
def test_widget_names_the_bad_cell(widget, change, message):
    table = pd.DataFrame(widget.EXAMPLE_ROWS, columns=widget.COORDINATE_COLUMNS + widget.LABEL_COLUMNS)
    with pytest.raises(ValueError, match=message):
        widget.score_table(table.assign(**change))


@pytest.mark.slow
@pytest.mark.browser
def test_widget_in_headless_chromium(widget, tmp_path):
    mean_km = widget.score_table(pd.DataFrame(widget.EXAMPLE_ROWS, columns=widget.COORDINATE_COLUMNS
                                              + widget.LABEL_COLUMNS))["mean_km"]
    port, log_path = free_port(), tmp_path / "widget.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    command = [sys.executable, str(Path(GEOLOCATION_METRIC_PATH) / "app.py")]
    with served_app(command, env, port, log_path) as url, chromium_page(url) as (page, expect, outside_requests):
        page.locator("#score").click()
        expect(page.locator("#scores")).to_contain_text(str(mean_km)[:8], timeout=60_000)
        expect(page.locator("#scores")).to_contain_text("top1")
        assert outside_requests == [], f"the page reached outside the app: {outside_requests}"
    assert "Traceback" not in log_path.read_text()
