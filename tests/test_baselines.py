"""Frozen-embedding baselines and the scoring of score matrices, on small synthetic data with known answers."""

import numpy as np
import pytest

from contrastgeo import baselines
from contrastgeo.benchmarking.evaluation import metrics_from_ranking, metrics_from_scores, rank_places


def _clusters(num_classes=3, per_class=6, dim=8, noise=0.05, seed=0):
    """Well separated clusters around orthogonal centres: (embeddings, labels, centres)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim, dtype=np.float32)[:num_classes]
    labels = np.repeat(np.arange(num_classes), per_class)
    embeddings = centres[labels] + noise * rng.standard_normal((len(labels), dim)).astype(np.float32)
    return embeddings, labels, centres


def test_majority_ranks_classes_by_training_counts_with_ties_in_label_order():
    scores = baselines.majority_class_scores([2, 2, 0, 1, 1, 2], num_classes=4, num_queries=3)
    assert scores.shape == (3, 4)
    np.testing.assert_array_equal(rank_places(scores, top_k=4), [[2, 1, 0, 3]] * 3)
    tied = baselines.majority_class_scores([1, 0], num_classes=3, num_queries=1)
    np.testing.assert_array_equal(rank_places(tied, top_k=3), [[0, 1, 2]])


@pytest.mark.parametrize("labels, message", [([], "empty"), ([0, 5], r"train_labels\[1\] = 5"), ([0.5], "integer")])
def test_majority_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        baselines.majority_class_scores(np.array(labels), num_classes=3, num_queries=2)


def test_zero_shot_picks_the_matching_prompt():
    _, _, centres = _clusters(num_classes=4)
    rng = np.random.default_rng(1)
    queries = centres[[3, 0, 2, 1]] + 0.1 * rng.standard_normal((4, centres.shape[1]))
    scores = baselines.prompt_similarity_scores(queries, centres)
    np.testing.assert_array_equal(scores.argmax(axis=1), [3, 0, 2, 1])
    # cosine: scaling a query does not change its scores
    np.testing.assert_allclose(baselines.prompt_similarity_scores(5 * queries, centres), scores, rtol=1e-5)


def test_zero_shot_rejects_mismatched_dimensions_and_nan():
    with pytest.raises(ValueError, match="dimension 4, expected 8"):
        baselines.prompt_similarity_scores(np.ones((2, 4)), np.ones((3, 8)))
    queries = np.ones((3, 8))
    queries[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"query_embeds\[2\] holds NaN"):
        baselines.prompt_similarity_scores(queries, np.ones((3, 8)))


def test_prototypes_classify_separable_clusters_perfectly():
    support, support_labels, _ = _clusters(per_class=4, seed=0)
    queries, query_labels, _ = _clusters(per_class=10, seed=1)
    scores = baselines.prototype_scores(queries, support, support_labels, num_classes=3)
    np.testing.assert_array_equal(scores.argmax(axis=1), query_labels)


def test_prototype_is_the_normalised_mean_of_normalised_support_embeddings():
    support = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    prototypes = baselines.class_prototypes(support, [0, 0, 1], num_classes=2)
    np.testing.assert_allclose(prototypes, [[2 ** -0.5, 2 ** -0.5], [2 ** -0.5, 2 ** -0.5]], rtol=1e-6)


def test_prototypes_name_the_class_without_support():
    support, labels, _ = _clusters(num_classes=3)
    with pytest.raises(ValueError, match="class 3 has no support post"):
        baselines.class_prototypes(support, labels, num_classes=4)


def test_prototypes_plus_prompt_interpolates_between_prototypes_and_zero_shot():
    support, support_labels, centres = _clusters(per_class=2)
    queries, _, _ = _clusters(per_class=5, seed=3)
    prompts = centres[[1, 2, 0]]  # deliberately misleading prompts
    plain = baselines.prototype_scores(queries, support, support_labels, 3)
    np.testing.assert_allclose(
        baselines.prototype_scores(queries, support, support_labels, 3, place_embeds=prompts, prompt_weight=0.0),
        plain, rtol=1e-5)
    dominated = baselines.prototype_scores(queries, support, support_labels, 3, place_embeds=prompts,
                                           prompt_weight=1e4)
    np.testing.assert_array_equal(dominated.argmax(1), baselines.prompt_similarity_scores(queries, prompts).argmax(1))
    with pytest.raises(ValueError, match="place_embeds has 2 rows but there are 3 classes"):
        baselines.prototype_scores(queries, support, support_labels, 3, place_embeds=prompts[:2])


def test_logistic_regression_separates_clusters_and_fills_absent_classes_with_zero():
    train, train_labels, _ = _clusters(num_classes=3, per_class=5)
    queries, query_labels, _ = _clusters(num_classes=3, per_class=4, seed=2)
    probabilities = baselines.logistic_regression_scores(train, train_labels, queries, num_classes=5)
    assert probabilities.shape == (12, 5)
    np.testing.assert_array_equal(probabilities.argmax(1), query_labels)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert (probabilities[:, 3:] == 0).all()


def test_logistic_regression_needs_two_classes():
    train, _, _ = _clusters(num_classes=1)
    with pytest.raises(ValueError, match="at least two classes"):
        baselines.logistic_regression_scores(train, np.zeros(len(train), dtype=int), train, num_classes=2)


def test_tfidf_logistic_regression_tells_tiny_dialect_samples_apart():
    train_texts = ["grüezi mitenand, wie gahts", "chuchichäschtli und grüezi", "moin moin, wat is los",
                   "moin, dat is schön", "servus beinand, griaß di", "griaß di, servus"]
    train_labels = [0, 0, 1, 1, 2, 2]
    queries = ["grüezi zäme", "moin, wat nu", "servus und griaß di"]
    probabilities = baselines.tfidf_logistic_regression_scores(train_texts, train_labels, queries, num_classes=3)
    np.testing.assert_array_equal(probabilities.argmax(1), [0, 1, 2])
    with pytest.raises(ValueError, match=r"query_texts\[1\] must be a string"):
        baselines.tfidf_logistic_regression_scores(train_texts, train_labels, ["ok", None], num_classes=3)


def test_metrics_from_scores_known_answer():
    place_latlon = np.array([[47.37, 8.55], [46.95, 7.45], [47.56, 7.57]])
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.7], [0.3, 0.6, 0.1]])
    true_latlon = place_latlon[[0, 1, 1]]  # post 1 is in Bern but predicted in Basel
    metrics = metrics_from_scores(scores, [0, 1, 1], true_latlon, place_latlon)
    assert metrics["top1"] == pytest.approx(2 / 3)
    assert metrics["top5"] == 1.0  # three places: each label is in the top 3
    assert metrics["macro_acc"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["median_km"] == 0.0
    assert 60 < metrics["mean_km"] * 3 < 80  # Bern-Basel is about 69 km
    assert metrics["acc@161km"] == 1.0 and metrics["acc@1km"] == pytest.approx(2 / 3)


def test_scoring_rejects_nan_scores_and_out_of_range_rankings():
    with pytest.raises(ValueError, match=r"scores\[1\] holds NaN"):
        rank_places(np.array([[0.1, 0.2], [np.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"ranking\[0\] holds a place index outside \[0, 1\]"):
        metrics_from_ranking(np.array([[2]]), [0], np.zeros((1, 2)), np.zeros((2, 2)))
