"""Few-shot support sets: K posts per class drawn from a task's pool with a seed.

The draw is deterministic: one `numpy.random.default_rng(seed)` visits the classes in label order (0, 1, ... for a
ClassLabel column, sorted values otherwise) and draws K of each class's rows without replacement. The chosen rows
are returned in their original order (ascending row index), with the dataset's columns unchanged.
"""

import logging

import datasets
import numpy as np


logger = logging.getLogger(__name__)
SHORT_CLASS_POLICIES = ("error", "all")
# Posts per class a few-shot run holds out (outside its shots) to calibrate its probabilities.
HELDOUT_POSTS_PER_LABEL = 8


def _class_names(dataset, label_column, labels):
    feature = dataset.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return list(range(feature.num_classes)), feature.int2str
    return sorted(set(labels.tolist())), str


def k_shot_indices(dataset, k, seed, label_column="label", on_short_class="error"):
    """Row indices of a K-shot sample (ascending) and {class name: count} of the classes with fewer than K rows.

    Args:
        dataset: a `datasets.Dataset` with a label column.
        k: posts per class (a positive int).
        seed: seed of the draw.
        label_column: the class column (a ClassLabel column also counts its classes that have no row at all).
        on_short_class: "error" raises ValueError naming the first class with fewer than K rows and its count;
            "all" takes every row of such classes and reports them (returned and logged as a warning).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if on_short_class not in SHORT_CLASS_POLICIES:
        raise ValueError(f"on_short_class must be one of {SHORT_CLASS_POLICIES}, got {on_short_class!r}")
    if label_column not in dataset.column_names:
        raise ValueError(f"label column {label_column!r} not in the dataset's columns {dataset.column_names}")
    labels = np.asarray(dataset[label_column])
    classes, class_name = _class_names(dataset, label_column, labels)
    rng = np.random.default_rng(seed)
    chosen, short_classes = [], {}
    for label in classes:
        rows = np.flatnonzero(labels == label)
        if rows.size < k:
            if on_short_class == "error":
                raise ValueError(
                    f"class {class_name(label)!r} has {rows.size} row(s) in the pool, fewer than k={k} "
                    "(on_short_class='all', train.py's --on-short-class all, takes all of them)"
                )
            short_classes[class_name(label)] = int(rows.size)
            chosen.append(rows)
            continue
        chosen.append(rng.choice(rows, size=k, replace=False))
    if short_classes:
        logger.warning("k=%d: %d class(es) have fewer rows and are taken whole: %s", k, len(short_classes), short_classes)
    indices = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return indices, short_classes


def sample_k_shot(dataset, k, seed, label_column="label", on_short_class="error"):
    """A K-shot support set: `dataset.select(...)` of K rows per class, in original row order, no column added.

    See `k_shot_indices` for the draw and the `on_short_class` policy ("all" logs the classes taken whole; call
    `k_shot_indices` to get them as a dict).
    """
    indices, _ = k_shot_indices(dataset, k, seed, label_column, on_short_class)
    return dataset.select(indices.tolist())


def heldout_indices(labels, support_indices, seed, per_label=HELDOUT_POSTS_PER_LABEL):
    """Row indices (ascending) of up to `per_label` rows per label outside `support_indices`: the posts a few-shot
    run holds out to calibrate its probabilities. Drawn from a stream of its own (`default_rng([seed, 1])`), so
    they do not depend on the order of the K-shot draw; labels are visited in sorted order."""
    labels = np.asarray(labels)
    remaining = np.setdiff1d(np.arange(len(labels)), support_indices)
    rng = np.random.default_rng([seed, 1])
    rest_labels = labels[remaining]
    chosen = [rng.choice(rows, size=min(per_label, rows.size), replace=False)
              for rows in (np.flatnonzero(rest_labels == label) for label in np.unique(rest_labels))]
    return remaining[np.sort(np.concatenate(chosen))] if chosen else np.zeros(0, dtype=np.int64)
