"""Bring-your-own-data loader: formats, labelling rules, malformed rows and the skipped-rows report."""

import json
import logging

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_scripts.user_data import load_places_file, load_user_dataset, spherical_mean
from modeling_contrastgeo.gazetteer import haversine_km


POSTS = pd.DataFrame(
    {
        "text": ["Grüezi mitenand, Zürich!", "Fondue in Bern,\t'yes'", 'He said "hi", then left', "Zurich again"],
        "label": ["Zurich", "Bern", "Bern", "Zurich"],
        "latitude": [47.3769, 46.9480, 46.9480, 47.3769],
        "longitude": [8.5417, 7.4474, 7.4474, 8.5417],
        "user_id": [1, 2, 3, 4],
    }
)


def write_posts(frame, path):
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix, first_line", [(".csv", 2), (".tsv", 2), (".jsonl", 1), (".parquet", 1)])
def test_round_trip(tmp_path, suffix, first_line):
    dataset, places = load_user_dataset(write_posts(POSTS, tmp_path / f"posts{suffix}"))
    assert dataset.column_names == ["text", "label", "latitude", "longitude", "source_line"]
    assert dataset.features["label"].names == ["Bern", "Zurich"]
    assert dataset["text"] == POSTS["text"].tolist()
    assert [dataset.features["label"].int2str(label) for label in dataset["label"]] == POSTS["label"].tolist()
    assert dataset["latitude"] == POSTS["latitude"].tolist()
    assert dataset["source_line"] == list(range(first_line, first_line + len(POSTS)))
    # All posts of a label share one point: the place is exactly that point.
    assert places == [
        {"label": 0, "name": "Bern", "latitude": 46.9480, "longitude": 7.4474, "n_posts": 2},
        {"label": 1, "name": "Zurich", "latitude": 47.3769, "longitude": 8.5417, "n_posts": 2},
    ]


def test_place_coordinates_are_the_spherical_mean_across_the_antimeridian(tmp_path):
    frame = pd.DataFrame(
        {"text": ["a", "b"], "label": ["Fiji", "Fiji"], "latitude": [-17.0, -17.0], "longitude": [179.0, -179.0]}
    )
    _, places = load_user_dataset(write_posts(frame, tmp_path / "fiji.csv"))
    # Averaging degrees would put Fiji at longitude 0, in Africa.
    assert abs(abs(places[0]["longitude"]) - 180.0) < 1e-9
    assert places[0]["latitude"] == pytest.approx(-17.0, abs=0.01)
    assert places[0]["latitude"] < -17.0 + 1e-9  # the chord midpoint bulges towards the pole, never the equator


def test_spherical_mean_rejects_points_that_cancel_out():
    with pytest.raises(ValueError, match="cancel out"):
        spherical_mean([0.0, 0.0], [0.0, 180.0])


def test_multiline_csv_field_keeps_the_line_it_starts_on(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text('text,label,latitude,longitude\n"two\nlines",A,1,2\nnext,A,1,2\n', encoding="utf-8")
    dataset, _ = load_user_dataset(path)
    assert dataset["text"] == ["two\nlines", "next"]
    assert dataset["source_line"] == [2, 4]


def test_an_unclosed_quote_is_named_with_the_lines_it_swallowed(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text('text,label,latitude,longitude\nok,A,1,2\n"oops,A,1,2\nlost,B,1,2\nlost too",B,1,2,x\n'
                    'after,B,1,2\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 3: expected 4 fields, found 5 in one record over lines 3-5 "
                                         "\\(a quote opened on line 3 that is never closed\\?\\)"):
        load_user_dataset(path)
    dataset, _ = load_user_dataset(path, on_bad_rows="skip")
    assert dataset["text"] == ["ok", "after"]
    skipped = json.loads((tmp_path / "posts.csv.skipped.jsonl").read_text(encoding="utf-8"))
    assert "lost,B,1,2" in skipped["row"][0] and "over lines 3-5" in skipped["reason"]  # nothing lost unseen


def test_csv_with_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    POSTS.to_csv(path, index=False, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    dataset, _ = load_user_dataset(path)
    assert dataset["text"] == POSTS["text"].tolist()


def test_gzipped_jsonl_is_read(tmp_path):
    path = tmp_path / "posts.jsonl.gz"
    POSTS.to_json(path, orient="records", lines=True, compression="gzip")
    dataset, _ = load_user_dataset(path)
    assert dataset["text"] == POSTS["text"].tolist()


BAD_CSV = (
    "text,label,latitude,longitude\n"
    "fine,A,10,20\n"  # line 2
    "nan latitude,A,nan,20\n"  # line 3
    "far north,A,123,20\n"  # line 4
    "   ,A,10,20\n"  # line 5
    "no label,,10,20\n"  # line 6
    "too,many,fields,1,2\n"  # line 7
    "also fine,B,-10,-20\n"  # line 8
)
BAD_LINES = {3: "latitude is NaN", 4: "latitude 123.0 is outside", 5: "empty text", 6: "missing label", 7: "expected 4 fields, found 5"}


def test_malformed_rows_raise_one_error_with_every_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_user_dataset(path)
    message = str(error.value)
    assert f"{path}: 5 malformed row(s)" in message
    for line, reason in BAD_LINES.items():
        assert f"line {line}: {reason}" in message
    assert "line 2:" not in message and "line 8:" not in message
    assert "on_bad_rows='skip' (train.py --on-bad-rows skip)" in message  # the way out, for code and command line
    assert not (tmp_path / "bad.csv.skipped.jsonl").exists()


def test_skip_mode_writes_exactly_the_bad_rows(tmp_path, caplog):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="datasets_scripts.user_data"):
        dataset, places = load_user_dataset(path, on_bad_rows="skip")
    assert dataset["text"] == ["fine", "also fine"]
    assert dataset["source_line"] == [2, 8]
    assert [place["name"] for place in places] == ["A", "B"]
    report = [json.loads(line) for line in (tmp_path / "bad.csv.skipped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [record["line"] for record in report] == sorted(BAD_LINES)
    for record in report:
        assert BAD_LINES[record["line"]] in record["reason"]
    assert report[0]["row"] == {"text": "nan latitude", "label": "A", "latitude": "nan", "longitude": "20"}
    assert report[-1]["row"] == ["too", "many", "fields", "1", "2"]
    assert "5 malformed row(s)" in caplog.text and "bad.csv.skipped.jsonl" in caplog.text


def test_skip_mode_custom_report_path_and_parquet_nan(tmp_path):
    # pyarrow directly: pandas 3 would store the NaN as a null.
    table = pa.table(
        {
            "text": ["ok", None, "nan lat", "no lon"],
            "label": ["A", "A", "A", "A"],
            "latitude": [1.0, 2.0, float("nan"), 4.0],
            "longitude": [3.0, 4.0, 5.0, None],
        }
    )
    pq.write_table(table, tmp_path / "posts.parquet")
    report_path = tmp_path / "report" / "skipped.jsonl"
    report_path.parent.mkdir()
    dataset, _ = load_user_dataset(tmp_path / "posts.parquet", on_bad_rows="skip", skipped_rows_path=report_path)
    assert dataset["text"] == ["ok"]
    report = [json.loads(line) for line in report_path.read_text(encoding="utf-8").splitlines()]
    expected = [(2, "missing text"), (3, "latitude is NaN"), (4, "missing longitude")]
    assert [(record["line"], record["reason"]) for record in report] == expected
    assert report[1]["row"]["latitude"] == "nan"  # strict JSON: no bare NaN in the report


def test_broken_jsonl_line_is_named(tmp_path):
    path = tmp_path / "posts.jsonl"
    lines = [json.dumps({"text": "a", "label": "A", "latitude": 1, "longitude": 2}), "{not json", "", "[1, 2]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_user_dataset(path)
    assert "2 malformed row(s)" in str(error.value)
    assert "line 2: invalid JSON" in str(error.value)
    assert "line 4: expected a JSON object, got list" in str(error.value)


def test_error_summary_lists_ten_problems_and_counts_the_rest(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("text,label,latitude,longitude\n" + "x,A,95,0\n" * 13, encoding="utf-8")
    with pytest.raises(ValueError, match=r"13 malformed row\(s\).*line 11: .*and 3 more") as error:
        load_user_dataset(path)
    assert "line 12:" not in str(error.value)


def test_missing_text_column_and_misspelled_columns(tmp_path):
    path = write_posts(POSTS, tmp_path / "posts.csv")
    with pytest.raises(ValueError, match="text column 'body' not found"):
        load_user_dataset(path, text_column="body")
    with pytest.raises(ValueError, match="label column 'city' not found"):
        load_user_dataset(path, label_column="city")
    with pytest.raises(ValueError, match="on_bad_rows"):
        load_user_dataset(path, on_bad_rows="ignore")
    backup = tmp_path / "posts.csv.bak"
    backup.write_text("text\nx\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_user_dataset(backup)


def test_only_one_coordinate_column_is_an_error(tmp_path):
    path = write_posts(POSTS.drop(columns=["longitude"]), tmp_path / "posts.csv")
    with pytest.raises(ValueError, match="both 'latitude' and 'longitude'"):
        load_user_dataset(path)


@pytest.mark.slow
def test_coordinates_only_labels_posts_by_the_nearest_city(tmp_path):
    frame = pd.DataFrame(
        {"text": ["by the lake", "old town", "rive gauche"], "latitude": [47.37, 47.372, 46.20], "longitude": [8.54, 8.543, 6.15]}
    )
    path = write_posts(frame, tmp_path / "posts.jsonl")
    dataset, places = load_user_dataset(path)
    names = dataset.features["label"].names
    assert [names[label] for label in dataset["label"]] == [
        "Zürich, Zurich, Switzerland", "Zürich, Zurich, Switzerland", "Geneva, Switzerland"
    ]
    assert dataset["latitude"] == frame["latitude"].tolist()  # posts keep their own coordinates
    zurich = places[names.index("Zürich, Zurich, Switzerland")]
    assert zurich["n_posts"] == 2 and haversine_km(47.37, 8.54, zurich["latitude"], zurich["longitude"]) < 5

    # Restricted to Germany, a post in Zurich goes to a German city near the border.
    dataset, places = load_user_dataset(path, gazetteer_countries=["DE"])
    assert all(place["name"].endswith(", Germany") for place in places)
    nearest = places[dataset[0]["label"]]
    assert haversine_km(47.37, 8.54, nearest["latitude"], nearest["longitude"]) < 80


def test_labels_only_needs_a_places_file(tmp_path):
    path = write_posts(POSTS[["text", "label"]], tmp_path / "posts.csv")
    with pytest.raises(ValueError, match="labels without coordinates: pass places_path"):
        load_user_dataset(path)

    places_path = tmp_path / "places.csv"
    places_path.write_text("label,name,latitude,longitude\nZurich,\"Zürich, CH\",47.37,8.54\nBern,,46.95,7.45\nBasel,Basel,47.56,7.59\n")
    dataset, places = load_user_dataset(path, places_path=places_path)
    assert dataset.features["label"].names == ["Basel", "Bern", "Zurich"]
    assert dataset["latitude"] == [47.37, 46.95, 46.95, 47.37]  # a post takes its label's coordinates
    assert [(place["name"], place["n_posts"]) for place in places] == [("Basel", 0), ("Bern", 2), ("Zürich, CH", 2)]

    places_path.write_text("label,latitude,longitude\nZurich,47.37,8.54\n")
    with pytest.raises(ValueError, match=r"line 3: label 'Bern' is not in the places file"):
        load_user_dataset(path, places_path=places_path)
    dataset, _ = load_user_dataset(path, places_path=places_path, on_bad_rows="skip")
    assert dataset["source_line"] == [2, 5]
    report = (tmp_path / "posts.csv.skipped.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["line"] for line in report] == [3, 4]


def test_places_file_fixes_the_places_when_posts_have_coordinates(tmp_path):
    path = write_posts(POSTS, tmp_path / "posts.jsonl")
    places_path = tmp_path / "places.tsv"
    places_path.write_text("label\tname\tlatitude\tlongitude\nZurich\tZ\t47.0\t8.0\nBern\tB\t46.0\t7.0\n")
    dataset, places = load_user_dataset(path, places_path=places_path)
    assert dataset["latitude"] == POSTS["latitude"].tolist()  # posts keep their own coordinates
    assert [(place["name"], place["latitude"], place["longitude"]) for place in places] == [("B", 46.0, 7.0), ("Z", 47.0, 8.0)]


def test_places_file_population_column_is_kept_and_checked(tmp_path):
    path = write_posts(POSTS, tmp_path / "posts.jsonl")
    places_path = tmp_path / "places.csv"
    places_path.write_text("label,latitude,longitude,population\nZurich,47.37,8.54,421878\nBern,46.95,7.45,\n")
    _, places = load_user_dataset(path, places_path=places_path)
    # A blank cell leaves the population to GeoNames (the place prior looks it up): no key, not a 0.
    assert [(place["name"], place.get("population")) for place in places] == [("Bern", None), ("Zurich", 421878.0)]
    places_path.write_text("label,latitude,longitude,population\nZurich,47.37,8.54,lots\nBern,46.95,7.45,-3\n")
    with pytest.raises(ValueError) as error:
        load_places_file(places_path)
    assert "line 2: population must be a number, got 'lots'" in str(error.value)
    assert "line 3: population must be a finite number >= 0, got -3.0" in str(error.value)


def test_a_label_spread_over_a_region_gets_the_people_of_its_cities(tmp_path, caplog):
    # "IS": posts in Reykjavík, Akureyri (250 km away) and Keflavík; their mean lies inland, 10+ km from any city of
    # 15,000 people, where the nearest-city lookup would count a village. "Bern": every post in one spot.
    iceland = [(64.13548, -21.89541)] * 4 + [(65.68353, -18.0878)] * 3 + [(64.00492, -22.56242)] * 3
    posts = pd.DataFrame({
        "text": [f"post {i}" for i in range(len(iceland) + 2)],
        "label": ["IS"] * len(iceland) + ["Bern"] * 2,
        "latitude": [lat for lat, _ in iceland] + [46.948, 46.948],
        "longitude": [lon for _, lon in iceland] + [7.4474, 7.4474],
    })
    with caplog.at_level(logging.INFO, logger="datasets_scripts.user_data"):
        _, places = load_user_dataset(write_posts(posts, tmp_path / "posts.csv"))
    # Every Icelandic city of GeoNames' cities15000 is nearer to the island's label than to Bern and lies within the
    # radius that holds 90% of its posts (Akureyri is the farthest post).
    icelanders = 19219 + 118918 + 40040 + 31525 + 15930 + 19724
    assert [(place["name"], place.get("population")) for place in places] == [("Bern", None), ("IS", icelanders)]
    assert "1 label(s) spread over regions" in caplog.text and f"'IS': {icelanders}" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="datasets_scripts.user_data"):
        _, places = load_user_dataset(tmp_path / "posts.csv", find_regions=False)
    assert [place.get("population") for place in places] == [None, None]
    assert "spread over regions" not in caplog.text


def test_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label,latitude,longitude\nok,A,1,2\nZ\u00fcrich,A,1,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv:3: not UTF-8 text \(invalid start byte at byte 1 of the line\)"):
        load_user_dataset(path)


def test_places_file_validation(tmp_path):
    path = tmp_path / "places.jsonl"
    rows = [
        {"label": "A", "latitude": 1, "longitude": 2},
        {"label": "A", "latitude": 1, "longitude": 2},
        {"label": "B", "latitude": "north", "longitude": 2},
        {"label": "C", "latitude": 1, "longitude": 200},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(ValueError) as error:
        load_places_file(path)
    message = str(error.value)
    assert "3 malformed place row(s)" in message
    assert "line 2: label 'A' repeats line 1" in message
    assert "line 3: latitude 'north' is not a number" in message
    assert "line 4: longitude 200.0 is outside" in message
    path.write_text(json.dumps({"name": "x", "latitude": 1, "longitude": 2}) + "\n")
    with pytest.raises(ValueError, match=r"missing \['label'\]"):
        load_places_file(path)


@pytest.mark.slow
def test_label_column_none_ignores_labels(tmp_path):
    frame = POSTS.assign(label=["wrong", "wrong", "wrong", "wrong"])
    dataset, _ = load_user_dataset(write_posts(frame, tmp_path / "posts.parquet"), label_column=None)
    assert "wrong" not in dataset.features["label"].names
    assert isinstance(dataset.features["label"], datasets.ClassLabel)
    assert np.all(np.asarray(dataset["source_line"]) == np.arange(1, 5))
