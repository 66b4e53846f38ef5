"""Pre-training corpus (Wikivoyage), location-prior task (YFCC iNat2017) and GeoNames galleries from raw data."""

import math

import numpy as np
import pytest

from datasets_scripts import geonames, wikivoyage, yfcc
from datasets_scripts.common import file_digest, write_dataset


@pytest.fixture(scope="module")
def wikivoyage_corpus(raw_data_dir):
    return wikivoyage.build(raw_data_dir)


@pytest.fixture(scope="module")
def yfcc_task(raw_data_dir):
    return yfcc.build(raw_data_dir)


def test_wikivoyage_keeps_every_destination(wikivoyage_corpus):
    train = wikivoyage_corpus["train"]
    assert list(wikivoyage_corpus) == ["train"]
    assert train.column_names == ["text", "title", "latitude", "longitude", "has_byline"]
    assert train.num_rows == 17_428
    has_byline = np.asarray(train["has_byline"])
    assert has_byline.sum() == 17_402
    texts, titles = np.asarray(train["text"], dtype=object), np.asarray(train["title"], dtype=object)
    assert (texts[~has_byline] == titles[~has_byline]).all()
    assert train[0]["title"] == "'s-Hertogenbosch" and train[0]["text"].startswith("'s-Hertogenbosch, commonly known")
    latitudes, longitudes = np.asarray(train["latitude"]), np.asarray(train["longitude"])
    assert np.abs(latitudes).max() <= 90 and np.abs(longitudes).max() <= 180


def test_wikivoyage_rebuild_is_byte_identical(raw_data_dir, wikivoyage_corpus, tmp_path):
    first = write_dataset(wikivoyage_corpus, tmp_path / "first", wikivoyage.dataset_card())
    second = write_dataset(wikivoyage.build(raw_data_dir), tmp_path / "second", wikivoyage.dataset_card())
    for name in ("train.parquet", "README.md"):
        assert file_digest(first / name) == file_digest(second / name)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"title": "X", "lat": 1.0, "lon": 2.0, "byline": "b"', "invalid JSON"),
        ('["X", 1.0, 2.0]', "expected a JSON object, got list"),
        ('{"title": "X", "lon": 2.0, "byline": "b"}', "missing 'lat'"),
        ('{"title": "X", "lat": 91.5, "lon": 2.0, "byline": "b"}', "'lat' = 91.5 is outside"),
        ('{"title": "X", "lat": NaN, "lon": 2.0, "byline": "b"}', "'lat' is not finite"),
        ('{"title": "X", "lat": "47", "lon": 2.0, "byline": "b"}', "'lat' must be a number"),
        ('{"title": "", "lat": 1.0, "lon": 2.0, "byline": "b"}', "missing or empty 'title'"),
    ],
)
def test_wikivoyage_malformed_line_names_file_and_line(tmp_path, line, message):
    folder = tmp_path / wikivoyage.RAW_FOLDER
    folder.mkdir()
    good = '{"title": "A", "lat": 1.0, "lon": 2.0, "byline": "A is a place."}'
    (folder / wikivoyage.RAW_FILE).write_text(f"{good}\n{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{wikivoyage.RAW_FILE}:3: {message}"):
        wikivoyage.build(tmp_path)


def _expected_subset_size(train_counts, fraction):
    present = train_counts[train_counts > 0]
    return int(sum(max(1, math.floor(fraction * count + 0.5)) for count in present))


@pytest.mark.slow
def test_yfcc_location_prior_splits(yfcc_task):
    train, test = yfcc_task["train"], yfcc_task["test"]
    assert list(yfcc_task) == ["train", "test", "train_5pct", "train_10pct", "train_20pct"]
    assert train.num_rows + test.num_rows == 36_143
    num_classes = train.features["label"].num_classes
    assert num_classes == 4_472 and train.features["label"] == test.features["label"]
    assert set(train["yfcc_id"]).isdisjoint(test["yfcc_id"])
    train_counts = np.bincount(train["label"], minlength=num_classes)
    test_counts = np.bincount(test["label"], minlength=num_classes)
    total = train_counts + test_counts
    assert (train_counts >= 1).all()  # every species keeps a training photo, so every test species was seen
    assert (test_counts == np.minimum(np.floor(0.2 * total + 0.5), total - 1)).all()
    assert (total == 1).sum() == 225 and test_counts[total == 1].sum() == 0
    assert 0.19 < test.num_rows / 36_143 < 0.21

    previous_ids = set()
    for name, fraction in yfcc.FEW_LABEL_FRACTIONS.items():
        subset = yfcc_task[name]
        subset_counts = np.bincount(subset["label"], minlength=num_classes)
        assert subset.num_rows == _expected_subset_size(train_counts, fraction)
        assert (subset_counts >= 1).all() and (subset_counts <= train_counts).all()
        ids = set(subset["yfcc_id"])
        assert ids <= set(train["yfcc_id"]) and previous_ids <= ids  # nested subsets of train
        previous_ids = ids
    # Subsets keep train order: their ids appear in train in the same sequence.
    position = {photo_id: index for index, photo_id in enumerate(train["yfcc_id"])}
    assert np.all(np.diff([position[photo_id] for photo_id in yfcc_task["train_20pct"]["yfcc_id"]]) > 0)


@pytest.mark.slow
def test_yfcc_rebuild_is_identical(raw_data_dir, yfcc_task, tmp_path):
    first = write_dataset(yfcc_task, tmp_path / "first", yfcc.dataset_card())
    second = write_dataset(yfcc.build(raw_data_dir), tmp_path / "second", yfcc.dataset_card())
    for name in [f"{split}.parquet" for split in yfcc_task] + ["README.md"]:
        assert file_digest(first / name) == file_digest(second / name)


@pytest.mark.parametrize(
    "row, message",
    [
        ("id3,3,Vireo griseus,95.1,-94.39,u,v", "latitude 95.1 is outside"),
        ("id3,3,Vireo griseus,north,-94.39,u,v", "latitude 'north' is not a number"),
        ("id3,3,,29.5,-94.39,u,v", "empty species label"),
        ("id3,3,Vireo griseus,,-94.39,u,v", "missing latitude"),
        ("id3,3,Vireo griseus,29.5,inf,u,v", "longitude is not finite"),
        ("id1,3,Vireo griseus,29.5,-94.39,u,v", "yfcc100m ID 'id1' repeats line 2"),
        ("id3,3,Vireo griseus,29.5,-94.39,u", "expected 7 fields, found 6"),
    ],
)
def test_yfcc_malformed_row_names_file_and_line(tmp_path, row, message):
    folder = tmp_path / yfcc.RAW_FOLDER
    folder.mkdir()
    header = "yfcc100m ID,yfcc100m line number,label,latitude,longitude,Flickr URL,mmcommons URL"
    good = ["id1,1,Vireo griseus,29.5,-94.39,u,v", "id2,2,Tiarella cordifolia,36.1,-81.8,u,v"]
    (folder / yfcc.RAW_FILE).write_text("\n".join([header, *good, row]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{yfcc.RAW_FILE}:4: {message}"):
        yfcc.build(tmp_path)


def test_yfcc_few_label_subsets_are_seeded():
    labels = np.repeat(np.arange(5), [1, 3, 10, 40, 7])
    first, second = yfcc.few_label_subsets(labels), yfcc.few_label_subsets(labels)
    other_seed = yfcc.few_label_subsets(labels, seed=1)
    assert all(np.array_equal(first[name], second[name]) for name in first)
    assert not np.array_equal(first["train_20pct"], other_seed["train_20pct"])
    assert np.bincount(labels[first["train_20pct"]]).tolist() == [1, 1, 2, 8, 1]


@pytest.mark.slow
def test_geonames_gallery():
    places = geonames.build()["places"]
    assert places.column_names == ["geonameid", "name", "latitude", "longitude", "population", "country_code"]
    assert 33_000 < places.num_rows < 35_000
    # cities15000 also holds a few capitals and seats below 15,000 inhabitants, such as Vaduz.
    assert 0 < (np.asarray(places["population"]) < 15_000).sum() < 100
    assert np.all(np.diff(places["geonameid"]) > 0)
    zurich = places[places["name"].index("Zürich, Zurich, Switzerland")]
    assert zurich["country_code"] == "CH" and zurich["population"] > 300_000
    assert abs(zurich["latitude"] - 47.37) < 0.05 and abs(zurich["longitude"] - 8.55) < 0.05

    swiss = geonames.build_gallery("CH")["places"]
    country_codes = np.asarray(places["country_code"])
    assert set(swiss["country_code"]) == {"CH"} and swiss.num_rows == (country_codes == "CH").sum()
    assert "Zürich, Zurich, Switzerland" in swiss["name"]
    assert geonames.build_gallery("LI")["places"]["name"] == ["Vaduz, Liechtenstein"]
    balkans = geonames.build_gallery(["HR", "BA"])["places"]
    assert balkans.num_rows == np.isin(country_codes, ["HR", "BA"]).sum()
    with pytest.raises(ValueError, match="unknown country code"):
        geonames.build_gallery("XX")
