"""The task files of benchmarks/user_files.py (contrastgeo/benchmarking/user_files.py): what it writes is what a
user's file would be, and train.py's reader takes it as such."""

import json

import pytest

from contrastgeo.benchmarking.runner import TaskData
from contrastgeo.benchmarking.user_files import (read_posts, whole_file_metrics, write_country_task,
                                                 write_pool_share_task)
from datasets_scripts.user_data import load_places_file, load_user_dataset

from .tiny_models import SWISS_PLACES, synthetic_swiss_task


@pytest.fixture(scope="module")
def task_data():
    return TaskData.from_task("synthetic", synthetic_swiss_task())


def test_country_task_labels_each_post_by_its_nearest_citys_country(task_data, tmp_path):
    pool_path, query_path = write_country_task(task_data, tmp_path)
    dataset, places = load_user_dataset(pool_path)
    assert [place["name"] for place in places] == ["CH"]  # every synthetic place is a Swiss city
    assert dataset["text"] == task_data.pool_texts
    assert read_posts(query_path)[0] == task_data.query_texts


def test_pool_share_keeps_a_seeded_share_of_the_pool_in_order_with_the_places(task_data, tmp_path):
    pool_path, query_path, places_path = write_pool_share_task(task_data, tmp_path, share=0.5, seed=0)
    texts, labels, _ = read_posts(pool_path)
    assert len(texts) == len(task_data.pool_texts) // 2
    positions = [task_data.pool_texts.index(text) for text in texts]
    assert positions == sorted(set(positions))  # each pool post at most once, in pool order
    names = [place["name"] for place in SWISS_PLACES]
    assert all(label == names[task_data.pool_labels[position]] for label, position in zip(labels, positions))
    assert write_pool_share_task(task_data, tmp_path / "again", share=0.5, seed=0)[0].read_text() == \
        pool_path.read_text()
    assert [place["label"] for place in load_places_file(places_path)] == names
    dataset, _ = load_user_dataset(query_path, places_path=places_path)
    assert dataset["text"] == task_data.query_texts


def test_whole_file_metrics_need_both_scorings(tmp_path):
    (tmp_path / "eval_results.json").write_text(json.dumps({"top1": 0.5, "median_km": 10.0}))
    with pytest.raises(ValueError, match="no without_place_prior/.* metrics; train with --place-prior population"):
        whole_file_metrics(tmp_path)
    (tmp_path / "eval_results.json").write_text(json.dumps({"top1": 0.5, "without_place_prior/top1": 0.6}))
    metrics = whole_file_metrics(tmp_path)
    assert metrics["population prior (before)"]["top1"] == 0.5 and metrics["no prior (now the default)"] == {"top1": 0.6}
