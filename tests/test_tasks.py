"""The benchmark tasks built from ../shared/data follow DESIGN.md section 4 to the row."""

import importlib
import math
import subprocess
import sys

import datasets
import numpy as np
import pandas as pd
import pytest

from datasets_scripts import BENCHMARK_TASKS, REPO_ROOT, TASK_BUILDERS, VENDORED_DIR, load_task
from datasets_scripts.common import (
    file_digest, make_geolocation_task, read_dataset, readme_statistics, render_task_summary_table,
    replace_readme_statistics, task_statistics, write_dataset,
)
from modeling_contrastgeo.gazetteer import nearest_city_indices


EXPECTED_SIZES = {  # classes, pool, query (DESIGN.md section 4)
    "vardial-ch": (38, 2936, 2972),
    "vardial-bcms": (96, 39538, 5963),
    "midwest-2017": (70, 10369, 4366),
    "midwest-2017-meta": (70, 10369, 4366),
    "umass-global": (31, 6965, 2982),
}


@pytest.fixture(scope="session")
def task_frames(raw_data_dir):
    """`task_frames(name)` -> (pool frame, query frame, places frame, DatasetDict), built once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            module_name, kwargs = TASK_BUILDERS[name]
            module = importlib.import_module(f"datasets_scripts.{module_name}")
            pool, query, places = module.build_frames(raw_data_dir, **kwargs)
            cache[name] = (pool, query, places, make_geolocation_task(pool, query, places))
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_task_sizes_filtering_and_layout(task_frames, name):
    pool_frame, query_frame, places_frame, task = task_frames(name)
    classes, pool_size, query_size = EXPECTED_SIZES[name]
    assert set(task) == {"pool", "query", "places"}
    assert (task["places"].num_rows, task["pool"].num_rows, task["query"].num_rows) == (classes, pool_size, query_size)
    label_names = task["pool"].features["label"].names
    assert label_names == sorted(label_names) == task["places"]["name"] == task["query"].features["label"].names
    assert task["places"]["label"] == list(range(classes))
    pool_counts = np.bincount(task["pool"]["label"], minlength=classes)
    query_counts = np.bincount(task["query"]["label"], minlength=classes)
    assert pool_counts.min() >= 20 and query_counts.min() >= 3
    assert task["places"]["n_pool"] == pool_counts.tolist()
    # Every class that meets both thresholds in the unfiltered frames is kept (the filter drops no more than it must).
    raw_pool, raw_query = pool_frame["place_key"].value_counts(), query_frame["place_key"].value_counts()
    eligible = [key for key in raw_pool.index if raw_pool[key] >= 20 and raw_query.get(key, 0) >= 3]
    assert sorted(places_frame.loc[eligible, "name"]) == label_names
    for split in ("pool", "query"):
        latlon = np.stack([task[split]["latitude"], task[split]["longitude"]], axis=1)
        assert np.isfinite(latlon).all()
        assert (np.abs(latlon[:, 0]) <= 90).all() and (np.abs(latlon[:, 1]) <= 180).all()
    # Rows keep the frames' order: the dataset is the frame restricted to kept classes.
    kept_keys = set(eligible)
    assert task["pool"]["text"] == pool_frame.loc[pool_frame["place_key"].isin(kept_keys), "text"].tolist()
    assert task["query"]["text"] == query_frame.loc[query_frame["place_key"].isin(kept_keys), "text"].tolist()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vardial-ch", "vardial-bcms"])
def test_vardial_labels_are_nearest_cities(task_frames, name):
    pool_frame, query_frame, _, task = task_frames(name)
    places = task["places"]
    for split in ("pool", "query"):
        # The label is the nearest of all cities, so it is also the nearest of the kept ones.
        nearest = nearest_city_indices(
            task[split]["latitude"], task[split]["longitude"], places["latitude"], places["longitude"]
        )
        assert nearest.tolist() == task[split]["label"]
    # Provenance: pool rows are dev.txt lines, query rows distinct test_gold.txt lines (BCMS: 6,000 sampled first).
    assert pool_frame["line"].is_unique and query_frame["line"].is_unique
    assert len(query_frame) == (6000 if name == "vardial-bcms" else 3097)
    assert all(name.rsplit(", ", 1)[1] in {"Switzerland", "Germany", "Austria", "Liechtenstein", "Croatia",
               "Bosnia and Herzegovina", "Montenegro", "Serbia", "Kosovo", "Slovenia", "North Macedonia"}
               for name in places["name"])


@pytest.mark.slow
def test_midwest_users_never_on_both_sides_and_coordinates_are_bbox_centres(task_frames):
    pool_frame, query_frame, _, task = task_frames("midwest-2017")
    assert not set(pool_frame["user_id"]) & set(query_frame["user_id"])
    assert not set(pool_frame["id"]) & set(query_frame["id"])
    places = task["places"]
    for split in ("pool", "query"):
        labels = np.asarray(task[split]["label"])
        assert np.array_equal(np.asarray(task[split]["latitude"]), np.asarray(places["latitude"])[labels])
        assert np.array_equal(np.asarray(task[split]["longitude"]), np.asarray(places["longitude"])[labels])
    omaha = places["name"].index("Omaha, NE")
    assert 41.0 < places["latitude"][omaha] < 41.5 and -96.3 < places["longitude"][omaha] < -95.8


@pytest.mark.slow
def test_midwest_meta_appends_user_fields_only(task_frames):
    _, _, _, plain = task_frames("midwest-2017")
    _, _, _, meta = task_frames("midwest-2017-meta")
    assert meta["pool"]["label"] == plain["pool"]["label"]
    with_metadata = 0
    for base, text in zip(plain["pool"]["text"], meta["pool"]["text"]):
        assert text.startswith(base)
        suffix = text[len(base):]
        assert suffix == "" or suffix.startswith((" | user location: ", " | time zone: "))
        with_metadata += suffix != ""
    assert with_metadata > 0.5 * plain["pool"].num_rows


@pytest.mark.slow
def test_umass_split_rule_and_country_coordinates(task_frames):
    pool_frame, query_frame, places_frame, task = task_frames("umass-global")
    assert pool_frame["id"].is_unique and not set(pool_frame["id"]) & set(query_frame["id"])
    for key in places_frame.index:
        n_pool, n_query = int((pool_frame["place_key"] == key).sum()), int((query_frame["place_key"] == key).sum())
        assert n_pool == math.floor(0.7 * (n_pool + n_query) + 0.5)
    places = task["places"]
    assert "United States" in places["name"]
    us = places["name"].index("United States")
    assert (places["latitude"][us], places["longitude"][us]) == pytest.approx((40.71427, -74.00597))  # New York City
    labels = np.asarray(task["pool"]["label"])
    assert np.array_equal(np.asarray(task["pool"]["latitude"]), np.asarray(places["latitude"])[labels])
    # Codes are read as text (keep_default_na=False semantics): no missing value sneaks in as NaN.
    assert all(isinstance(key, str) and len(key) == 2 for key in pd.concat([pool_frame, query_frame])["place_key"])


@pytest.mark.slow
def test_written_task_is_deterministic_and_loads_offline(task_frames, tmp_path):
    _, _, _, task = task_frames("umass-global")
    card = importlib.import_module("datasets_scripts.umass").dataset_card()
    first, second = write_dataset(task, tmp_path / "a", card), write_dataset(task, tmp_path / "b", card)
    for file_name in ("pool.parquet", "query.parquet", "places.parquet", "README.md"):
        assert file_digest(first / file_name) == file_digest(second / file_name)
        # The vendored quickstart copy must be what the current code builds.
        assert file_digest(first / file_name) == file_digest(VENDORED_DIR / "umass-global" / file_name)
    loaded = datasets.load_dataset(str(first))
    assert set(loaded) == {"pool", "query"}
    assert loaded["pool"].features == task["pool"].features
    assert loaded["query"]["text"] == task["query"]["text"]
    places = datasets.load_dataset(str(first), "places")
    assert places["places"]["name"] == task["places"]["name"]
    assert read_dataset(first)["pool"]["label"] == task["pool"]["label"]


@pytest.mark.slow
def test_readme_statistics_table_is_what_the_builders_produce(task_frames):
    table = render_task_summary_table({name: task_statistics(task_frames(name)[3]) for name in BENCHMARK_TASKS})
    assert "| `vardial-ch` | 38 | 2,936 | 2,972 |" in table
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_statistics(readme) == table, "run: python -m datasets_scripts stats --all --write-readme README.md"
    assert readme_statistics(replace_readme_statistics(readme, "| new |")) == "| new |"


@pytest.mark.slow
def test_build_cli_matches_vendored_copy_and_load_task_fallbacks(raw_data_dir, tmp_path):
    output = tmp_path / "vardial-ch"
    command = [sys.executable, "-m", "datasets_scripts", "build", "--task", "vardial-ch",
               "--raw-dir", str(raw_data_dir), "--output-dir", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "| pool | 2,936 |" in completed.stdout
    # The vendored quickstart copy must be what the current code builds.
    for file_name in ("pool.parquet", "query.parquet", "places.parquet", "README.md"):
        assert file_digest(output / file_name) == file_digest(VENDORED_DIR / "vardial-ch" / file_name)
    from_vendored = load_task("umass-global", raw_dir=tmp_path / "no-raw-data", cache_dir=tmp_path / "cache")
    assert from_vendored["query"].num_rows == EXPECTED_SIZES["umass-global"][2]
    assert load_task("vardial-ch", data_dir=output)["pool"].num_rows == 2936
    with pytest.raises(ValueError, match="unknown task"):
        load_task("no-such-task")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("bad_line, message", [
    ("47.1\t8.2\n", "line 2: expected 3"),
    ("47.1\tabc\thi\n", "line 2: unparsable"),
    ("147.1\t8.2\thi\n", "line 2: coordinates out of range"),
])
def test_vardial_reader_names_the_bad_line(tmp_path, bad_line, message):
    from datasets_scripts.vardial import read_smg_file

    path = _write(tmp_path / "dev.txt", "47.0\t8.0\tgrüezi\n" + bad_line)
    with pytest.raises(ValueError, match=message) as error:
        read_smg_file(path)
    assert "dev.txt" in str(error.value)


def test_vardial_reader_keeps_carriage_returns_inside_posts(tmp_path):
    from datasets_scripts.vardial import read_smg_file

    frame = read_smg_file(_write(tmp_path / "dev.txt", "47.0\t8.0\tone\rtwo\n46.0\t7.0\tthree\r\n"))
    assert frame["text"].tolist() == ["one\rtwo", "three"] and frame["line"].tolist() == [1, 2]


def test_midwest_and_umass_readers_name_the_bad_line(tmp_path):
    from datasets_scripts.midwest import read_city_tweets
    from datasets_scripts.umass import read_annotated_tweets

    with pytest.raises(ValueError, match=r"tweets.jsonl, line 1: invalid JSON"):
        read_city_tweets(_write(tmp_path / "tweets.jsonl", "{not json\n"))
    with pytest.raises(ValueError, match=r"tweets.jsonl, line 1: expected a JSON object, got list"):
        read_city_tweets(_write(tmp_path / "tweets.jsonl", "[1, 2]\n"))
    city = '{"id": "1", "text": "hi", "user_id": "7", "place_full_name": "Ames, IA", "place_type": "city", "place_bbox": %s}\n'
    with pytest.raises(ValueError, match="line 2: place_bbox"):
        read_city_tweets(_write(tmp_path / "tweets.jsonl", city % "[[-93.7, 42.0], [-93.5, 42.1]]" + city % '"x"'))
    header = "\tTweet ID\tCountry\tDate\tTweet\n"
    with pytest.raises(ValueError, match="all_annotated.tsv, line 3: expected 5"):
        read_annotated_tweets(_write(tmp_path / "all_annotated.tsv", header + "0\t1\tNA\t2014-01-01\thello\n1\t2\tUS\n"))
    # An unclosed quote merges the rows up to the next quote into one field, with their TABs in it.
    unclosed = header + '0\t1\tUS\t2014-01-01\t"oops\n1\t2\tGB\t2014-01-01\tlost\n2\t3\tFR\t2014-01-01\tend"\n'
    with pytest.raises(ValueError, match="lines 2-4: a field holds TAB characters, so a quote opened on line 2"):
        read_annotated_tweets(_write(tmp_path / "unclosed.tsv", unclosed))
    namibia = read_annotated_tweets(_write(tmp_path / "ok.tsv", header + "0\t1\tNA\t2014-01-01\thello\n"))
    assert namibia["Country"].tolist() == ["NA"]
    with pytest.raises(ValueError, match="lone_cr.tsv, line 2: unreadable record"):
        read_annotated_tweets(_write(tmp_path / "lone_cr.tsv", header + "0\t1\tUS\t2014-01-01\thel\rlo\n"))


@pytest.mark.parametrize("module, function, file_name, good_line", [
    ("vardial", "read_smg_file", "dev.txt", "47.0\t8.0\tgrüezi\n"),
    ("umass", "read_annotated_tweets", "all_annotated.tsv", "\tTweet ID\tCountry\tDate\tTweet\n"),
    ("midwest", "read_city_tweets", "tweets.jsonl", '{"id": "1", "text": "hi", "user_id": "7", "place_full_name": '
                                                    '"Ames, IA", "place_type": "town", "place_bbox": []}\n'),
    ("wikivoyage", "read_destinations", "destinations.jsonl", '{"title": "A", "lat": 1.0, "lon": 2.0}\n'),
])
def test_raw_readers_name_the_file_and_line_of_bytes_that_are_not_utf8(tmp_path, module, function, file_name,
                                                                         good_line):
    reader = getattr(importlib.import_module(f"datasets_scripts.{module}"), function)
    path = tmp_path / file_name
    path.write_bytes(good_line.encode("utf-8") + b"\xff\xfe latin-1 \xe9\n")
    with pytest.raises(ValueError, match=f"{file_name}:2: not UTF-8 text"):
        reader(path)


def test_vardial_reader_refuses_an_empty_file(tmp_path):
    from datasets_scripts.vardial import read_smg_file

    with pytest.raises(ValueError, match="dev.txt: no posts"):
        read_smg_file(_write(tmp_path / "dev.txt", ""))


_CITY_TWEET = ('{"id": "%d", "text": "hi", "user_id": "7", "place_full_name": "Ames, IA", "place_type": "city", '
               '"place_bbox": [[-93.7, 42.0], [-93.5, 42.1]]}\n')
# (module, reader, file name, header, two records, how many records the reader returns from a file of them)
RAW_READERS = {
    "vardial": ("read_smg_file", "dev.txt", "", ["47.0\t8.0\tgrüezi\n", "46.0\t7.0\tsali\n"], len),
    "umass": ("read_annotated_tweets", "all_annotated.tsv", "\tTweet ID\tCountry\tDate\tTweet\n",
              ["0\t1\tNA\t2014-01-01\thello\n", "1\t2\tUS\t2014-01-01\thi\n"], len),
    "midwest": ("read_city_tweets", "tweets.jsonl", "", [_CITY_TWEET % 1, _CITY_TWEET % 2], len),
    "wikivoyage": ("read_destinations", "destinations.jsonl", "",
                   ['{"title": "A", "lat": 1.0, "lon": 2.0}\n', '{"title": "B", "lat": 3.0, "lon": 4.0}\n'],
                   lambda columns: len(columns["text"])),
}


def _raw_reader(tmp_path, module):
    function, file_name, header, records, num_records = RAW_READERS[module]
    reader = getattr(importlib.import_module(f"datasets_scripts.{module}"), function)
    return lambda text: num_records(reader(_write(tmp_path / file_name, header + text))), records


@pytest.mark.parametrize("module", sorted(RAW_READERS))
@pytest.mark.parametrize("trailing", ["\n", "\n\n", "\r\n"])
def test_raw_readers_tolerate_blank_lines_at_the_end_of_the_file(tmp_path, module, trailing):
    read, records = _raw_reader(tmp_path, module)
    assert read("".join(records) + trailing) == 2


@pytest.mark.parametrize("module", ["umass", "midwest", "wikivoyage"])
def test_raw_readers_of_formats_that_skip_blank_lines_count_those_between_records(tmp_path, module, caplog):
    """TSV and JSONL: the package's other readers of these formats skip blank lines, so these do, with a log line."""
    read, records = _raw_reader(tmp_path, module)
    first_record_line = 2 if module == "umass" else 1  # the header is line 1
    with caplog.at_level("INFO"):
        assert read(records[0] + "\n\n" + records[1] + "\n") == 2
    blank = [first_record_line + 1, first_record_line + 2]
    assert f"2 blank line(s) between records skipped (lines {blank})" in caplog.text


def test_vardial_reader_names_a_blank_line_between_posts(tmp_path):
    """An SMG file holds one post per line and has no blank lines: one between posts is an error, not a skip."""
    read, records = _raw_reader(tmp_path, "vardial")
    with pytest.raises(ValueError, match="dev.txt, line 2: blank line between records"):
        read(records[0] + "\n" + records[1])


def _frame(keys):
    return pd.DataFrame({"text": [f"post {i}" for i in range(len(keys))], "place_key": keys,
                         "latitude": 1.0, "longitude": 2.0})


def test_make_geolocation_task_filters_both_sides_and_checks_places():
    places = pd.DataFrame({"name": ["Beta", "Alpha", "Gamma"], "latitude": [1.0, 2.0, float("nan")],
                           "longitude": [1.0, 2.0, 3.0]}, index=pd.Index(["b", "a", "g"], name="place_key"))
    # a: enough on both sides; b: enough pool, too few query; g: too few pool.
    pool, query = _frame(["a"] * 20 + ["b"] * 25 + ["g"] * 2), _frame(["a"] * 3 + ["b"] * 2 + ["g"] * 9)
    task = make_geolocation_task(pool, query, places)
    assert task["places"]["name"] == ["Alpha"] and task["places"]["n_pool"] == [20]
    assert (task["pool"].num_rows, task["query"].num_rows) == (20, 3)
    with pytest.raises(ValueError, match="without finite coordinates"):
        make_geolocation_task(pool, query, places, min_pool_posts=2, min_query_posts=2)
    twins = places.assign(name=["Same", "Same", "Other"])
    with pytest.raises(ValueError, match="share the place name"):
        make_geolocation_task(pool, query, twins, min_pool_posts=20, min_query_posts=2)
    with pytest.raises(ValueError, match="absent from the places table"):
        make_geolocation_task(_frame(["zz"]), query, places)


def test_posts_with_empty_text_are_kept_and_logged(caplog):
    places = pd.DataFrame({"name": ["Alpha"], "latitude": [1.0], "longitude": [2.0]},
                          index=pd.Index(["a"], name="place_key"))
    query = _frame(["a"] * 3).assign(text=["one", "  ", "three"])
    with caplog.at_level("WARNING", logger="datasets_scripts.common"):
        task = make_geolocation_task(_frame(["a"] * 20), query, places)
    assert task["query"]["text"] == ["one", "  ", "three"]
    assert "query: 1 post(s) with empty text kept (rows [1] of the split)" in caplog.text and "pool:" not in caplog.text


def test_write_dataset_writes_selected_rows_and_refuses_foreign_files(tmp_path):
    places = pd.DataFrame({"name": ["Alpha", "Beta"], "latitude": [1.0, 2.0], "longitude": [3.0, 4.0]},
                          index=pd.Index(["a", "b"], name="place_key"))
    task = make_geolocation_task(_frame(["a", "b"] * 10), _frame(["a", "b"] * 3), places, min_pool_posts=10)
    # An indices mapping (select) must be applied, not the underlying table written.
    task["query"] = task["query"].select([5, 0])
    card = {"pretty_name": "Toy: a task", "description": "toy", "citation": "@misc{toy}"}
    folder = write_dataset(task, tmp_path / "toy", card)
    loaded = datasets.load_dataset(str(folder))
    assert loaded["query"]["text"] == ["post 5", "post 0"]
    assert loaded["pool"].features["label"].names == ["Alpha", "Beta"]
    assert "| pool | 20 | 2 | 10 / 10 / 10 |" in (folder / "README.md").read_text(encoding="utf-8")
    places_only = write_dataset(datasets.DatasetDict({"places": task["places"]}), tmp_path / "gallery", card)
    assert set(datasets.load_dataset(str(places_only))) == {"places"}
    with pytest.raises(ValueError, match="places.parquet"):
        write_dataset(datasets.DatasetDict({"pool": task["pool"]}), places_only, card)
    with pytest.raises(ValueError, match=r"\['pool'\] have no rows"):
        write_dataset(datasets.DatasetDict({"pool": task["pool"].select([])}), tmp_path / "empty", card)


PUSH_THEN_LOAD = """
import datasets
from datasets_scripts.__main__ import main as datasets_cli
status = datasets_cli(["push", "--data-dir", ARGS["folder"], "--repo-id", "dialects/vardial-ch"])
# The Parquet export is served by datasets-server.<endpoint host>, which the stand-in is not.
datasets.config.USE_PARQUET_EXPORT = False
pool = datasets.load_dataset("dialects/vardial-ch", split="pool")
places = datasets.load_dataset("dialects/vardial-ch", "places", split="places")
RESULT = {"status": status, "pool": pool.to_pandas().to_dict("list"), "labels": pool.features["label"].names,
          "places": places.to_pandas().to_dict("list")}
"""


@pytest.mark.slow
def test_pushed_task_loads_from_the_hub_by_repo_id(hub_stand_in, tmp_path):
    from tests.hub_clients import run_client

    result = run_client(hub_stand_in, tmp_path / "hf_home", PUSH_THEN_LOAD, folder=str(VENDORED_DIR / "vardial-ch"))
    assert result["status"] == 0
    local = datasets.load_dataset(str(VENDORED_DIR / "vardial-ch"))
    assert result["pool"] == local["pool"].to_pandas().to_dict("list")
    assert result["labels"] == local["pool"].features["label"].names
    local_places = datasets.load_dataset(str(VENDORED_DIR / "vardial-ch"), "places", split="places")
    assert result["places"] == local_places.to_pandas().to_dict("list")
    uploaded = hub_stand_in.files("dialects/vardial-ch", repo_type="dataset")
    assert set(uploaded) == {path.name for path in (VENDORED_DIR / "vardial-ch").iterdir()}


def test_push_checks_the_folder_and_the_offline_switch_before_any_network(tmp_path, monkeypatch):
    from datasets_scripts.__main__ import main as datasets_cli
    from datasets_scripts.hub import push_dataset_folder

    with pytest.raises(ValueError, match="not a dataset folder"):
        push_dataset_folder(tmp_path, "user/empty")
    folder = VENDORED_DIR / "vardial-ch"
    with pytest.raises(ValueError, match="'a/b/c' is not a Hub repository id"):
        push_dataset_folder(folder, "a/b/c")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        push_dataset_folder(folder, "user/vardial-ch")
    assert datasets_cli(["push", "--data-dir", str(folder), "--repo-id", "user/vardial-ch"]) == 1
    assert datasets_cli(["push", "--repo-id", "user/vardial-ch"]) == 2


def test_cli_names_an_output_path_that_is_a_file_and_a_readme_without_the_table(tmp_path, capsys):
    from datasets_scripts.__main__ import main as datasets_cli

    taken = _write(tmp_path / "taken", "not a folder")
    assert datasets_cli(["build", "--task", "vardial-ch", "--output-dir", str(taken)]) == 1
    assert f"--output-dir {taken} is a file" in capsys.readouterr().err
    readme = _write(tmp_path / "README.md", "unchanged")
    assert datasets_cli(["stats", "--task", "vardial-ch", "--write-readme", str(readme)]) == 2
    assert "--write-readme writes the --all table; add --all" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "unchanged"


def test_cli_names_a_missing_raw_file_without_a_traceback(tmp_path, capsys):
    from datasets_scripts.__main__ import main as datasets_cli

    (tmp_path / "raw").mkdir()  # a raw folder without the task's files
    assert datasets_cli(["build", "--task", "vardial-ch", "--raw-dir", str(tmp_path / "raw"),
                         "--output-dir", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: [Errno 2] No such file or directory") and "ch/dev.txt" in error
