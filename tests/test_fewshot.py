import logging

import datasets
import numpy as np
import pytest

from datasets_scripts.fewshot import k_shot_indices, sample_k_shot


def _pool(counts, names=None):
    """A toy pool with counts[c] rows of class c, classes interleaved so that row order is not class order."""
    labels = np.concatenate([np.full(count, label) for label, count in enumerate(counts)])
    labels = labels[np.random.default_rng(123).permutation(labels.size)]
    names = names or [f"place {label}" for label in range(len(counts))]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    rows = {"text": [f"post {i}" for i in range(labels.size)], "label": labels.tolist()}
    return datasets.Dataset.from_dict(rows, features=features)


def test_exactly_k_per_class_in_original_order_with_columns_unchanged():
    pool = _pool([10, 7, 25])
    for k in (1, 4, 7):
        support = sample_k_shot(pool, k=k, seed=0)
        assert np.bincount(support["label"], minlength=3).tolist() == [k, k, k]
        assert support.column_names == pool.column_names and support.features == pool.features
        positions = [int(text.split()[1]) for text in support["text"]]
        assert positions == sorted(positions)
        # Every chosen row is the pool's row at that index (select, not a copy with new content).
        assert [pool[position]["label"] for position in positions] == support["label"]


def test_same_seed_same_sample_other_seed_other_sample():
    pool = _pool([30, 30, 30])
    first, again = sample_k_shot(pool, k=5, seed=3), sample_k_shot(pool, k=5, seed=3)
    assert first["text"] == again["text"]
    others = [sample_k_shot(pool, k=5, seed=seed)["text"] for seed in (4, 5)]
    assert all(other != first["text"] for other in others)


def test_draw_follows_the_documented_rule():
    pool = _pool([6, 9])
    labels = np.asarray(pool["label"])
    rng = np.random.default_rng(11)
    draws = [rng.choice(np.flatnonzero(labels == label), size=2, replace=False) for label in (0, 1)]
    expected = np.sort(np.concatenate(draws))
    indices, short = k_shot_indices(pool, k=2, seed=11)
    assert indices.tolist() == expected.tolist() and short == {}


def test_short_class_error_names_class_and_count():
    pool = _pool([10, 3, 10], names=["Zurich", "Vaduz", "Bern"])
    with pytest.raises(ValueError, match=r"class 'Vaduz' has 3 row\(s\).*k=4.*--on-short-class all"):
        sample_k_shot(pool, k=4, seed=0)


def test_short_class_policy_all_takes_them_whole_and_says_so(caplog):
    pool = _pool([10, 3, 10, 0], names=["Zurich", "Vaduz", "Bern", "Chur"])
    with caplog.at_level(logging.WARNING, logger="datasets_scripts.fewshot"):
        indices, short = k_shot_indices(pool, k=4, seed=0, on_short_class="all")
    assert short == {"Vaduz": 3, "Chur": 0}
    assert "Vaduz" in caplog.text and "Chur" in caplog.text
    support = sample_k_shot(pool, k=4, seed=0, on_short_class="all")
    assert np.bincount(support["label"], minlength=4).tolist() == [4, 3, 4, 0]
    assert support["text"] == [pool[int(index)]["text"] for index in indices]


def test_plain_label_column_without_classlabel():
    pool = datasets.Dataset.from_dict({"text": list("abcdefgh"), "place": ["x", "y"] * 4})
    support = sample_k_shot(pool, k=2, seed=0, label_column="place")
    assert sorted(support["place"]) == ["x", "x", "y", "y"]


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "positive integer"), ({"k": 2.5}, "positive integer"), ({"k": True}, "positive integer"),
    ({"k": 1, "label_column": "city"}, "label column 'city'"), ({"k": 1, "on_short_class": "skip"}, "on_short_class"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_k_shot(_pool([3, 3]), seed=0, **kwargs)


@pytest.mark.slow
def test_real_task_sample(built_task):
    pool = built_task("vardial-ch")["pool"]
    support = sample_k_shot(pool, k=16, seed=0)
    assert support.num_rows == 16 * pool.features["label"].num_classes
    assert support["text"] == sample_k_shot(pool, k=16, seed=0)["text"]
