"""Turn a score matrix over a task's places into the benchmark's metrics (DESIGN.md §4)."""

import numpy as np

from contrastgeo.metrics import compute_geolocation_metrics

TOP_K = 5


def rank_places(scores, top_k=TOP_K):
    """(N, min(top_k, C)) place indices by decreasing score; ties go to the lower index (stable sort)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (num_posts, num_places) matrix, got shape {scores.shape}")
    bad_rows = np.flatnonzero(np.isnan(scores).any(axis=1))
    if bad_rows.size:
        raise ValueError(f"scores[{bad_rows[0]}] holds NaN: every place needs a comparable score")
    return np.argsort(-scores, axis=1, kind="stable")[:, :top_k]


def metrics_from_scores(scores, true_labels, true_latlon, place_latlon):
    """Metrics of predicting, for each post, the best-scoring place (see `metrics_from_ranking`).

    Args:
        scores: (N, C) scores, higher is better; column c is place c.
    """
    return metrics_from_ranking(rank_places(scores), true_labels, true_latlon, place_latlon)


def metrics_from_ranking(ranking, true_labels, true_latlon, place_latlon):
    """Metrics of ranked place predictions.

    Args:
        ranking: (N, k) place indices, best first (k >= 1; top-5 uses the first min(k, 5)).
        true_labels: (N,) the posts' place labels (for top-1, top-5 and macro accuracy).
        true_latlon: (N, 2) the posts' own coordinates [latitude, longitude] (for the distance errors).
        place_latlon: (C, 2) each place's coordinates; a post's predicted location is its top place's.

    Returns:
        `compute_geolocation_metrics` output: top1, top5, macro_acc, acc@<t>km, mean_km, median_km, num_examples.
    """
    ranking = np.asarray(ranking)
    place_latlon = np.asarray(place_latlon, dtype=np.float64)
    true_latlon = np.asarray(true_latlon, dtype=np.float64)
    if ranking.ndim != 2 or ranking.shape[1] == 0:
        raise ValueError(f"ranking must be a (num_posts, k) matrix of place indices, got shape {ranking.shape}")
    if place_latlon.ndim != 2 or place_latlon.shape[1] != 2:
        raise ValueError(f"place_latlon must have shape (num_places, 2), got {place_latlon.shape}")
    outside = np.flatnonzero(((ranking < 0) | (ranking >= len(place_latlon))).any(axis=1))
    if outside.size:
        raise ValueError(f"ranking[{outside[0]}] holds a place index outside [0, {len(place_latlon) - 1}]")
    if true_latlon.shape != (len(ranking), 2):
        raise ValueError(f"true_latlon must have shape ({len(ranking)}, 2), got {true_latlon.shape}")
    predicted = place_latlon[ranking[:, 0]]
    return compute_geolocation_metrics(
        predicted[:, 0], predicted[:, 1], true_latlon[:, 0], true_latlon[:, 1],
        predictions=ranking[:, 0], references=np.asarray(true_labels), top_k_predictions=ranking[:, :TOP_K],
    )
