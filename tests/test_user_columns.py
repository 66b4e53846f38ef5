"""User files whose column names or label spellings differ from what the reader expects: a column differing only in
case or spaces is refused (not read as absent), and integer labels written as decimals ("2.0") match "2"."""

import logging
import re

import pandas as pd
import pytest

from contrastgeo.training.data import align_labels, read_point_file
from datasets_scripts.user_data import load_places_file, load_user_dataset

from .test_user_data import POSTS, write_posts


# ------------------------------------------------------------------------------------- columns differing in case
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_label_column_differing_only_in_case_is_refused_not_replaced_by_geonames(tmp_path, suffix, caplog):
    path = write_posts(POSTS.rename(columns={"label": "Label"}), tmp_path / f"posts{suffix}")
    with caplog.at_level(logging.INFO, logger="datasets_scripts.user_data"):
        with pytest.raises(ValueError) as error:
            load_user_dataset(path)
    assert str(error.value) == (f"{path}: no column 'label', but 'Label' differs only in case: rename it to 'label' "
                                "or pass label_column='Label' (train.py --label-column Label)")
    assert "nearest GeoNames city" not in caplog.text


@pytest.mark.parametrize("renamed, arguments, message", [
    ({"text": "Text"}, {}, "no column 'text', but 'Text' differs only in case: rename it to 'text' or pass "
                           "text_column='Text' (train.py --text-column Text)"),
    ({"latitude": "LATITUDE"}, {}, "no column 'latitude', but 'LATITUDE' differs only in case"),
    ({"longitude": " longitude"}, {}, "no column 'longitude', but ' longitude' differs only in surrounding spaces: "
                                      "rename it to 'longitude' or pass longitude_column=' longitude' "
                                      "(train.py --longitude-column ' longitude')"),
    ({"label": "City "}, {"label_column": "city"}, "no column 'city', but 'City ' differs only in case and surrounding "
                                                   "spaces"),
], ids=["text", "latitude", "longitude-spaces", "label-flag"])
def test_every_named_column_is_checked_under_the_name_it_is_given(tmp_path, renamed, arguments, message):
    path = write_posts(POSTS.rename(columns=renamed), tmp_path / "posts.csv")
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: {message}")):
        load_user_dataset(path, **arguments)


def test_two_columns_differing_only_in_case_are_both_named(tmp_path):
    path = write_posts(POSTS.rename(columns={"label": "Label"}).assign(LABEL="x"), tmp_path / "posts.csv")
    with pytest.raises(ValueError, match="but 'Label' differs only in case \\(also 'LABEL'\\): rename it"):
        load_user_dataset(path)


def test_a_column_present_under_its_name_wins_over_one_differing_in_case(tmp_path):
    path = write_posts(POSTS.assign(Label="ignored"), tmp_path / "posts.csv")
    dataset, _ = load_user_dataset(path)
    assert dataset.features["label"].names == ["Bern", "Zurich"]


@pytest.mark.slow
def test_without_any_label_like_column_posts_are_still_labelled_by_the_nearest_city(tmp_path):
    path = write_posts(POSTS.drop(columns=["label"]).assign(labels="not a label column"), tmp_path / "posts.csv")
    dataset, places = load_user_dataset(path)
    names = dataset.features["label"].names
    assert [names[label] for label in dataset["label"]] == [
        "Zürich, Zurich, Switzerland", "Bern, Switzerland", "Bern, Switzerland", "Zürich, Zurich, Switzerland"]


@pytest.mark.parametrize("header, column", [("Label,latitude,longitude", "Label"),
                                            ("label,latitude,longitude,Population", "Population"),
                                            ("label,latitude,longitude, name", " name")])
def test_a_places_file_column_differing_only_in_case_is_refused(tmp_path, header, column):
    path = tmp_path / "places.csv"
    path.write_text(header + "\n" + "Zurich,47.37,8.54" + ",x" * (header.count(",") - 2) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{path}: no column '{column.strip().lower()}', but '{column}' differs only "
                                         "in (case|surrounding spaces): rename it to '[a-z]+'$"):
        load_places_file(path)
    with pytest.raises(ValueError, match=f"no column '{column.strip().lower()}', but '{column}'"):
        load_user_dataset(write_posts(POSTS, tmp_path / "posts.csv"), places_path=path)


def test_a_point_file_column_differing_only_in_case_names_its_flag(tmp_path):
    path = write_posts(POSTS.rename(columns={"latitude": "Latitude"}), tmp_path / "points.csv")
    columns = {"label": "label", "latitude": "latitude", "longitude": "longitude"}
    with pytest.raises(ValueError, match="no column 'latitude', but 'Latitude' differs only in case: .*"
                                         "\\(train.py --latitude-column Latitude\\)"):
        read_point_file(path, columns)


def test_one_column_named_for_two_roles_is_refused_by_both_readers(tmp_path):
    """Without the check the posts reader took the latitudes as longitudes too, and every post sat on the line
    latitude = longitude, with exit 0."""
    path = write_posts(POSTS, tmp_path / "posts.csv")
    message = "latitude_column and longitude_column both name the column 'latitude'"
    with pytest.raises(ValueError, match=message):
        load_user_dataset(path, latitude_column="latitude", longitude_column="latitude")
    with pytest.raises(ValueError, match=message):
        read_point_file(path, {"label": "label", "latitude": "latitude", "longitude": "latitude"})
    with pytest.raises(ValueError, match="text_column and label_column both name the column 'text'"):
        load_user_dataset(path, label_column="text")
    assert len(load_user_dataset(path, label_column=None)[0]) == len(POSTS)  # None reads no column


def test_a_point_file_refuses_texts_and_labels_the_posts_reader_refuses(tmp_path):
    """JSONL and Parquet values carry their type: a list, a mapping or a boolean is not turned into a class name or a
    text by its Python spelling ("['oak', 'fir']"), as load_user_dataset does not either."""
    path = tmp_path / "points.jsonl"
    path.write_text('{"text": "a", "label": ["oak", "fir"], "latitude": 47, "longitude": 8}\n'
                    '{"text": "b", "label": true, "latitude": 46, "longitude": 7}\n'
                    '{"text": "c", "label": 2.5, "latitude": 46, "longitude": 7}\n'
                    '{"text": ["d"], "label": "oak", "latitude": 46, "longitude": 7}\n'
                    '{"text": "e", "label": 2.0, "latitude": 46, "longitude": 7}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(
            "3 malformed row(s) (line 1: label must be a string or an integer, got ['oak', 'fir']; line 2: label "
            "must be a string or an integer, got True; line 3: label must be a string or an integer, got 2.5)")):
        read_point_file(path, {"label": "label", "latitude": "latitude", "longitude": "longitude"})
    with pytest.raises(ValueError, match=re.escape("1 malformed row(s) (line 4: text must be a string, got list)")):
        read_point_file(path, {"text": "text", "latitude": "latitude", "longitude": "longitude"})
    kept = read_point_file(path, {"label": "label", "latitude": "latitude", "longitude": "longitude"},
                           on_bad_rows="skip")
    assert kept["label"] == ["oak", "2"] and kept["source_line"] == [4, 5]


# ------------------------------------------------------------------------------ integer labels written as decimals
def integer_labels(labels):
    return pd.DataFrame({"text": [f"post {i}" for i in range(len(labels))], "label": labels,
                         "latitude": [46.0 + i for i in range(len(labels))], "longitude": [7.0] * len(labels)})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_integer_labels_next_to_a_missing_one_read_as_integers_in_every_format(tmp_path, suffix):
    train = integer_labels([1, 2, 3, None, -3, 1])  # pandas makes the column float: CSV says 1.0, 2.0, -3.0
    path = write_posts(train, tmp_path / f"train{suffix}")
    if suffix == ".csv":
        assert path.read_text().splitlines()[1] == "post 0,1.0,46.0,7.0"
    dataset, _ = load_user_dataset(path, on_bad_rows="skip")
    assert dataset.features["label"].names == ["-3", "1", "2", "3"]  # as a file without the missing one reads
    query, _ = load_user_dataset(write_posts(integer_labels([1, 2, 3]), tmp_path / "eval.csv"))
    names, train_names = query.features["label"].names, dataset.features["label"].names
    assert align_labels(query["label"], names, train_names, "eval.csv").tolist() == [1, 2, 3]


def test_train_file_of_float_labels_matches_an_eval_file_of_integer_labels(tmp_path):
    from contrastgeo.training import parse_args
    from contrastgeo.training.data import load_geolocation_data

    # Dropping the row of the missing label keeps the column float: the train file says 1.0, 2.0, 3.0.
    integer_labels([1, 2, 3, None, 1, 2, 3]).dropna().to_csv(tmp_path / "train.csv", index=False)
    integer_labels([1, 2, 3, 1, 2, 3]).to_csv(tmp_path / "eval.csv", index=False)
    data = load_geolocation_data(parse_args(["--train-file", tmp_path / "train.csv", "--eval-file",
                                             tmp_path / "eval.csv", "--output-dir", tmp_path / "out"]))
    assert [place["name"] for place in data.places] == ["1", "2", "3"]
    assert data.eval["label"].tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("labels", [["1.0", "1.5"], ["1.0", "v1.0"], ["1.0", "1.0a"], ["1.0", "2"], ["1.0", " 2.0"]])
def test_a_label_column_with_any_other_value_is_left_as_written(tmp_path, labels):
    dataset, _ = load_user_dataset(write_posts(integer_labels(labels), tmp_path / "posts.csv"))
    assert dataset.features["label"].names == sorted(labels)


def test_decimal_strings_in_jsonl_stay_strings(tmp_path):
    dataset, _ = load_user_dataset(write_posts(integer_labels(["1.0", "2.0"]), tmp_path / "posts.jsonl"))
    assert dataset.features["label"].names == ["1.0", "2.0"]


def test_places_file_and_point_file_labels_read_as_the_posts_labels(tmp_path):
    places = tmp_path / "places.csv"
    places.write_text("label,latitude,longitude\n1.0,46.0,7.0\n2.0,47.0,8.0\n", encoding="utf-8")
    assert [place["label"] for place in load_places_file(places)] == ["1", "2"]
    posts = write_posts(integer_labels([1, 2]).drop(columns=["latitude", "longitude"]), tmp_path / "posts.csv")
    dataset, _ = load_user_dataset(posts, places_path=places)
    assert dataset.features["label"].names == ["1", "2"]
    points = write_posts(integer_labels([1, None, 2]), tmp_path / "points.csv")
    columns = {"label": "label", "latitude": "latitude", "longitude": "longitude"}
    assert read_point_file(points, columns, on_bad_rows="skip")["label"] == ["1", "2"]


def test_unknown_eval_labels_are_listed_beside_the_training_labels(tmp_path):
    message = ("eval.csv: 3 row(s) have labels that are not training labels, first at line 2: ['1', '2', '3']; "
               "training labels: ['1.0', '2.0', '3.0']; a model")
    with pytest.raises(ValueError, match=re.escape(message)):
        align_labels([0, 1, 2], ["1", "2", "3"], ["1.0", "2.0", "3.0"], "eval.csv", source_lines=[2, 3, 4])
    many = [f"place {i:02d}" for i in range(12)]
    with pytest.raises(ValueError, match="training labels: \\['place 00', .*'place 09'\\] \\.\\.\\.; a model"):
        align_labels([0], ["Atlantis"], many, "eval.csv")
