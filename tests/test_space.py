"""The Gradio Space: prediction function, SVG map, start-up, and the page in headless Chromium."""

import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from contrastgeo.space_hub import MODEL_VARIABLE, SPACE_FILES
from tests.browser import chromium_page, free_port, served_app
from tests.hub_clients import HIDE_PROJECT, run_client

SPACE_DIR = Path(__file__).resolve().parents[1] / "space"
sys.path.insert(0, str(SPACE_DIR))  # the Space's modules import each other as top-level modules, as on the Hub

import app as space_app  # noqa: E402
import map_svg  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
# Real places (GeoNames coordinates) for the tiny model's label set.
PLACES = [
    {"name": "Zürich, Switzerland", "latitude": 47.36667, "longitude": 8.55},
    {"name": "Bern, Switzerland", "latitude": 46.94809, "longitude": 7.44744},
    {"name": "Basel, Switzerland", "latitude": 47.55839, "longitude": 7.57327},
    {"name": "Geneva, Switzerland", "latitude": 46.20222, "longitude": 6.14569},
    {"name": "Lugano, Switzerland", "latitude": 46.01008, "longitude": 8.96004},
    {"name": "Vienna, Austria", "latitude": 48.20849, "longitude": 16.37208},
]
SMALL_LAND = np.array([[47.0, 8.0], [46.5, 7.0], [48.0, 16.0], [-33.9, 151.2]])


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, minilm_path):
    """A tiny BERT ContrastGeo model with PLACES as its label set, saved with its code and tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from modeling_contrastgeo import ContrastGeoModel

    encoder_dir = tmp_path_factory.mktemp("tiny_encoder")
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
    BertModel(config).save_pretrained(encoder_dir)
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(encoder_dir)
    model_dir = tmp_path_factory.mktemp("tiny_contrastgeo")
    ContrastGeoModel.from_text_encoder(encoder_dir, places=PLACES, projection_dim=16).save_pretrained(model_dir)
    return model_dir


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    return space_app.load_model(tiny_model_dir)


@pytest.fixture
def small_land(monkeypatch):
    """Skip the GeoNames table (seconds to load) where the test is not about the map's land."""
    monkeypatch.setattr(space_app, "land_latlon", lambda model: SMALL_LAND)


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return str(path)


# ---------------------------------------------------------------------------------------------- prediction
def test_geolocate_posts_table_matches_model_and_map(tiny_model, small_land):
    text = "Grüezi mitenand, s'Tram isch z'spät\n\n   \nGoing to the lake in Lugano  "
    table, svg = space_app.geolocate_posts(tiny_model, text, 3, space_app.MODEL_PLACES, "", None)
    posts = ["Grüezi mitenand, s'Tram isch z'spät", "Going to the lake in Lugano"]
    assert list(table.columns) == list(space_app.RESULT_COLUMNS)
    assert table["post"].tolist() == [posts[0]] * 3 + [posts[1]] * 3
    assert table["rank"].tolist() == [1, 2, 3, 1, 2, 3]
    expected = tiny_model.geolocate(posts, top_k=3)
    assert table["name"].tolist() == [place["name"] for candidates in expected for place in candidates]
    np.testing.assert_allclose(table["score"], [p["score"] for c in expected for p in c], atol=1e-4)
    root = ElementTree.fromstring(svg)
    markers = root.findall(f".//{SVG}circle[@class='prediction']")
    assert len(markers) == 6
    assert sorted((m.get("data-post"), m.get("data-rank")) for m in markers) == [
        (post, rank) for post in "12" for rank in "123"
    ]


def test_uploaded_places_csv(tiny_model, small_land, tmp_path):
    csv_path = _write(tmp_path / "places.csv", "label,latitude,longitude,population\n"
                                                "Chur,46.85,9.53,37000\n\"Sion, Valais\",46.23,7.36,\n")
    assert space_app.read_places_csv(csv_path) == [
        {"name": "Chur", "latitude": 46.85, "longitude": 9.53, "population": 37000.0},
        {"name": "Sion, Valais", "latitude": 46.23, "longitude": 7.36},  # blank: the model looks it up
    ]
    table, _ = space_app.geolocate_posts(tiny_model, "Hoi zäme", 2, space_app.UPLOADED_PLACES, "", csv_path)
    assert sorted(table["name"]) == ["Chur", "Sion, Valais"]


def test_population_checkbox_switches_the_place_prior(tiny_model, small_land, tmp_path):
    posts = "Hoi zäme\nGrüezi"
    plain = tiny_model.geolocate(posts.split("\n"), top_k=1, place_prior="none")
    heavy = next(place for place in tiny_model.config.places if place["name"] != plain[0][0]["name"])
    rows = "".join(f"\"{place['name']}\",{place['latitude']},{place['longitude']},"
                   f"{10 ** 12 if place is heavy else 1000}\n" for place in tiny_model.config.places)
    csv_path = _write(tmp_path / "places.csv", "name,latitude,longitude,population\n" + rows)
    weighed = [space_app.geolocate_posts(tiny_model, posts, 1, space_app.UPLOADED_PLACES, "", csv_path, weigh)[0]
               for weigh in (True, False, None)]
    assert set(weighed[0]["name"]) == {heavy["name"]}
    assert weighed[1]["name"][0] == plain[0][0]["name"]
    assert weighed[2]["name"].tolist() == weighed[1]["name"].tolist()  # None: the model's own setting (no prior)


def test_top_k_beyond_gallery_warns_and_shows_all(tiny_model, small_land, tmp_path):
    csv_path = _write(tmp_path / "two.csv", "name,latitude,longitude\nChur,46.85,9.53\nSion,46.23,7.36\n")
    with pytest.warns(UserWarning, match="only 2 place"):
        table, _ = space_app.geolocate_posts(tiny_model, "Hoi", 5, space_app.UPLOADED_PLACES, "", csv_path)
    assert len(table) == 2


@pytest.mark.parametrize(
    "text, top_k, choice, country, csv_text, message",
    [
        (" \n\t\n", 5, "model", "", None, "Enter at least one post"),
        ("x\n" * 201, 5, "model", "", None, "201 posts given; this demo takes at most 200"),
        ("hi", 0, "model", "", None, "top-k must be a whole number from 1 to 20, got 0"),
        ("hi", 2.5, "model", "", None, "top-k must be a whole number from 1 to 20, got 2.5"),
        ("hi", float("nan"), "model", "", None, "top-k must be a whole number from 1 to 20, got nan"),
        ("hi", float("inf"), "model", "", None, "top-k must be a whole number from 1 to 20, got inf"),
        ("hi", 5, "country", "", None, "Enter an ISO country code"),
        ("hi", 5, "country", "Swiss", None, "'Swiss' is not an ISO 3166 two-letter country code"),
        ("hi", 5, "csv", "", None, "Upload a CSV of places"),
        ("hi", 5, "csv", "", "", "empty"),
        ("hi", 5, "csv", "", "city,lat,lon\nChur,46.8,9.5\n", "no column name, latitude, longitude"),
        ("hi", 5, "csv", "", "name,latitude,longitude,Latitude\nChur,46.8,9.5,0\n",
         "names the column\\(s\\) latitude more than once"),
        ("hi", 5, "csv", "", "name,latitude,longitude\nChur,46.8,9.5\nSion,north,7.3\nX,95,1\n",
         "2 bad row\\(s\\): line 3: latitude 'north' is not a number; "
         "line 4: latitude '95' is not a number in \\[-90, 90\\]"),
        ("hi", 5, "csv", "", "name,latitude,longitude\n,46.8,9.5\n", "line 2: the name is empty"),
        ("hi", 5, "csv", "", "name,latitude,longitude\n\nChur,46.8,9.5,extra,fields\n",
         "line 3: 5 fields but the header has 3"),
        ("hi", 5, "csv", "", 'name,latitude,longitude\n"Chur,46.8,9.5\n', "not a well-formed CSV"),
        ("hi", 5, "csv", "", b"\xff\xfe\x00\x81binary", "not a UTF-8 text file"),
        ("hi", 5, "csv", "", "name,latitude,longitude\n", "holds no places"),
        ("hi", 5, "csv", "", "name,latitude,longitude,population\nChur,46.8,9.5,many\nSion,46.2,7.3,-1\n",
         "line 2: population 'many' is not a number; line 3: population '-1' is not a number >= 0"),
    ],
)
def test_bad_input_names_the_problem(tiny_model, small_land, tmp_path, text, top_k, choice, country, csv_text,
                                     message):
    choice = {"model": space_app.MODEL_PLACES, "country": space_app.GEONAMES_COUNTRY,
              "csv": space_app.UPLOADED_PLACES}[choice]
    csv_path = _write(tmp_path / "places.csv", csv_text) if csv_text is not None else None
    with pytest.raises(space_app.UserInputError, match=message):
        space_app.geolocate_posts(tiny_model, text, top_k, choice, country, csv_path)


def test_ui_callback_turns_input_errors_into_gradio_errors(tiny_model, small_land):
    import gradio as gr

    with pytest.raises(gr.Error, match="Enter at least one post"):
        space_app._geolocate_for_ui(tiny_model, "", 5, space_app.MODEL_PLACES, "", None, False)


@pytest.mark.slow
def test_country_gallery_and_real_land(tiny_model):
    from modeling_contrastgeo.gazetteer import load_geonames_cities

    table, svg = space_app.geolocate_posts(tiny_model, "Hoi zäme", 4, space_app.GEONAMES_COUNTRY, " li, ch ", None)
    swiss_or_liechtenstein = {(c["name"], c["latitude"], c["longitude"]) for c in load_geonames_cities(["CH", "LI"])}
    assert len(table) == 4
    for row in table.itertuples():
        assert any(name == row.name and abs(lat - row.latitude) < 1e-4 and abs(lon - row.longitude) < 1e-4
                   for name, lat, lon in swiss_or_liechtenstein)
    land = ElementTree.fromstring(svg).find(f".//{SVG}path[@class='land']")
    assert land is not None and land.get("d").count("M") > 100  # many GeoNames cities around Switzerland
    with pytest.raises(space_app.UserInputError, match=r"unknown country code\(s\) \['QQ'\]"):
        space_app.geolocate_posts(tiny_model, "hi", 5, space_app.GEONAMES_COUNTRY, "QQ", None)


# ---------------------------------------------------------------------------------------------- map
def test_viewport_holds_points_with_canvas_aspect():
    latlon = np.array([[47.4, 8.5], [46.0, 6.1], [46.9, 7.4]])
    lat_min, lat_max, lon_min, lon_max = map_svg.map_viewport(latlon, 760, 440)
    assert lat_min < 46.0 and lat_max > 47.4 and lon_min < 6.1 and lon_max > 8.5
    x_scale = np.cos(np.radians((lat_min + lat_max) / 2))
    assert (lon_max - lon_min) * x_scale / (lat_max - lat_min) == pytest.approx(760 / 440, rel=0.02)
    assert map_svg.map_viewport(np.zeros((0, 2)), 760, 440) == (-90.0, 90.0, -180.0, 180.0)
    world = map_svg.map_viewport(np.array([[70.0, -170.0], [-60.0, 175.0]]), 760, 440)
    assert world[0] >= -90 and world[1] <= 90 and world[2] >= -180 and world[3] <= 180


def test_map_markers_sized_by_score_and_placed_by_projection():
    predictions = [[{"name": "A", "latitude": 10.0, "longitude": 20.0, "score": 0.8},
                    {"name": "B", "latitude": 12.0, "longitude": 24.0, "score": 0.1}]]
    svg = map_svg.render_map_svg(predictions, width=400, height=200)
    markers = {m.get("data-rank"): m for m in ElementTree.fromstring(svg).iter(f"{SVG}circle")
               if m.get("class") == "prediction"}
    assert float(markers["1"].get("r")) > float(markers["2"].get("r"))
    # B is north-east of A: right of it and higher up on the canvas.
    assert float(markers["2"].get("cx")) > float(markers["1"].get("cx"))
    assert float(markers["2"].get("cy")) < float(markers["1"].get("cy"))


def test_map_labels_each_posts_best_place_without_overlap():
    far_apart = [[{"name": "Zürich", "latitude": 47.37, "longitude": 8.55, "score": 0.6}],
                 [{"name": "Geneva", "latitude": 46.2, "longitude": 6.15, "score": 0.5}]]
    crowded = [[{"name": "Zürich", "latitude": 47.37, "longitude": 8.55, "score": 0.6}],
               [{"name": "Kloten", "latitude": 47.45, "longitude": 8.58, "score": 0.5}]]

    def labels(predictions):
        root = ElementTree.fromstring(map_svg.render_map_svg(predictions))
        return [text.text for text in root.find(f".//{SVG}g[@class='labels']")]

    assert sorted(labels(far_apart)) == ["Geneva", "Zürich"]
    assert labels(crowded) == ["Zürich"]  # the better-scored place keeps its label


def test_map_draws_only_visible_thinned_dots_and_escapes_names():
    predictions = [[{"name": "<script>alert(1)</script> ${x} {{y}}", "latitude": 47.0, "longitude": 8.0,
                     "score": 0.5}]]
    background = np.array([[47.1, 8.1]] * 500 + [[-33.9, 151.2]])  # 500 copies of one point + one far away
    svg = map_svg.render_map_svg(predictions, background_latlon=background)
    assert ElementTree.fromstring(svg).find(f".//{SVG}path[@class='land']").get("d").count("M") == 1
    assert "<script>" not in svg and "${" not in svg and "{{" not in svg
    assert "&lt;script&gt;" in svg


# ---------------------------------------------------------------------------------------------- start-up
def test_start_up_without_a_model_exits_with_a_message(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("CONTRASTGEO_MODEL", raising=False)
    monkeypatch.setattr(space_app, "default_model_source", lambda: None)
    assert space_app.main([]) == 2
    assert "--demo-untrained" in capsys.readouterr().err
    assert space_app.main(["--model", str(tmp_path / "missing")]) == 2
    assert "Could not load a ContrastGeo model" in capsys.readouterr().err


def test_start_up_refuses_a_model_saved_without_its_tokenizer(tiny_model_dir, tmp_path):
    import shutil

    folder = tmp_path / "no_tokenizer"
    shutil.copytree(tiny_model_dir, folder, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens_map.json",
                                                                          "vocab.txt"))
    with pytest.raises(ValueError, match="the model has no usable tokenizer"):
        space_app.load_model(folder)


def test_default_model_is_the_quickstart_output(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "quickstart").mkdir(parents=True)
    (tmp_path / "outputs" / "quickstart" / "config.json").write_text("{}")
    assert space_app.default_model_source() == str(tmp_path / "outputs" / "quickstart")


# ---------------------------------------------------------------------------------------------- browser
@pytest.mark.slow
@pytest.mark.browser
def test_page_in_headless_chromium(tiny_model_dir, tiny_model, tmp_path):
    post = "Grüezi mitenand, s'Tram isch scho wieder z'spät"
    expected_best = tiny_model.geolocate([post], top_k=1)[0][0]["name"]
    with_prior = tiny_model.geolocate([post], top_k=5, place_prior="population")[0]
    port, log_path = free_port(), tmp_path / "app.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, str(SPACE_DIR / "app.py"), "--model", str(tiny_model_dir), "--port", str(port)]
    with served_app(command, env, port, log_path) as url, chromium_page(url) as (page, expect, outside_requests):
        page.locator("#posts textarea").fill(post)
        page.locator("#geolocate").click()
        expect(page.locator("#results")).to_contain_text(expected_best, timeout=60_000)
        expect(page.locator("#map svg circle.prediction")).to_have_count(5, timeout=30_000)
        expect(page.locator("#map svg path.land")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "space.png"), full_page=True)

        # The population checkbox reaches geolocate: its best place is the model's with the prior.
        checkbox = page.locator("#place-prior input[type=checkbox]")
        assert not checkbox.is_checked()  # the tiny model has no prior of its own
        checkbox.check()
        page.locator("#geolocate").click()
        expect(page.locator("#results")).to_contain_text(str(round(with_prior[0]["score"], 4)), timeout=60_000)
        expect(page.locator("#results")).to_contain_text(with_prior[0]["name"])

        page.locator("#posts textarea").fill("")
        page.locator("#geolocate").click()
        expect(page.get_by_text("Enter at least one post")).to_be_visible(timeout=30_000)
        assert outside_requests == [], f"the page reached outside the app: {outside_requests}"
    assert (tmp_path / "space.png").stat().st_size > 10_000
    assert "Traceback" not in log_path.read_text()


# ---------------------------------------------------------------------------------------------- on the Hub
PUSH_MODEL_AND_SPACE = """
from huggingface_hub import HfApi
from contrastgeo.cli import main as contrastgeo_cli
api = HfApi()
api.create_repo("dialects/tiny-swiss", exist_ok=True)
api.upload_folder(folder_path=ARGS["model_dir"], repo_id="dialects/tiny-swiss")
RESULT = contrastgeo_cli(["push-space", "--repo-id", "demos/geo", "--model", "dialects/tiny-swiss"])
"""
# As the Space runs: its files downloaded from the Hub, its variable in the environment, no ContrastGeo package.
RUN_SPACE_FROM_THE_HUB = HIDE_PROJECT + """
import os
from huggingface_hub import snapshot_download
sys.path.insert(0, snapshot_download("demos/geo", repo_type="space"))
import app
source = app.parse_args([]).model
table, svg = app.geolocate_posts(app.load_model(source), ARGS["post"], 3, app.MODEL_PLACES)
RESULT = {"source": source, "app_file": app.__file__, "names": table["name"].tolist(), "svg": svg.startswith("<svg")}
"""


@pytest.mark.slow
def test_space_deployed_to_the_hub_serves_the_model_from_the_hub(tiny_model_dir, tiny_model, tmp_path, hub_stand_in):
    assert run_client(hub_stand_in, tmp_path / "hf_home", PUSH_MODEL_AND_SPACE, model_dir=str(tiny_model_dir)) == 0
    space = hub_stand_in.files("demos/geo", repo_type="space")
    assert space == {name: (SPACE_DIR / name).read_bytes() for name in SPACE_FILES}
    variables = hub_stand_in.space_variables("demos/geo")
    assert variables == {MODEL_VARIABLE: "dialects/tiny-swiss"}

    post = "Grüezi mitenand, s'Tram isch scho wieder z'spät"
    result = run_client(hub_stand_in, tmp_path / "space_home", RUN_SPACE_FROM_THE_HUB, cwd=tmp_path,
                        extra_env=variables, post=post)
    assert result["source"] == "dialects/tiny-swiss" and "space_home" in result["app_file"]
    assert result["names"] == [place["name"] for place in tiny_model.geolocate([post], top_k=3)[0]]
    assert result["svg"]


def test_push_space_refuses_a_model_path_and_a_folder_without_the_app(tmp_path, capsys):
    from contrastgeo.cli import main as contrastgeo_cli
    from contrastgeo.space_hub import push_space

    assert contrastgeo_cli(["push-space", "--repo-id", "demos/geo", "--model", str(tmp_path / "model")]) == 1
    assert "is not a Hub repository id" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"lacks the Space's files \['README.md', 'app.py'"):
        push_space("demos/geo", "dialects/tiny-swiss", space_dir=tmp_path)
