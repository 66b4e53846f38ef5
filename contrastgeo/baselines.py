"""Few-shot geolocation baselines on frozen post embeddings (and one on raw text).

Every baseline returns a score matrix of shape (num_queries, num_classes): higher is better, column c is class
(place) c of the task. `contrastgeo.benchmarking.evaluation.metrics_from_scores` turns it into top-1/top-5,
macro accuracy and distance errors. Embeddings are expected L2-normalised (as `ContrastGeoModel.encode_posts` and
`encode_places` return them), so dot products are cosine similarities.

- `majority_class_scores`: every query gets the training label counts (a reference, not a text model).
- `prompt_similarity_scores`: zero-shot retrieval, cosine between a post and each place's prompt embedding.
- `prototype_scores`: cosine to the mean of each class's support embeddings; with `place_embeds` the prototype
  is combined with the class's prompt embedding (normalised weighted sum).
- `logistic_regression_scores`: multinomial logistic regression (scikit-learn) on frozen embeddings.
- `tfidf_logistic_regression_scores`: character n-gram TF-IDF + logistic regression, the classic strong
  dialect-identification baseline; it needs no encoder.
"""

import warnings

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression


def _check_matrix(array, name, dim=None):
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dim), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} has dimension {array.shape[1]}, expected {dim}")
    bad_rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad_rows.size:
        raise ValueError(f"{name}[{bad_rows[0]}] holds NaN or inf")
    return array


def _check_labels(labels, num_classes, name, length):
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != length:
        raise ValueError(f"{name} must be 1-D with {length} values (one per row), got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if outside.size:
        raise ValueError(f"{name}[{outside[0]}] = {labels[outside[0]]} is outside [0, {num_classes - 1}]")
    return labels.astype(np.int64)


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _normalize_rows(array):
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def majority_class_scores(train_labels, num_classes, num_queries):
    """(num_queries, num_classes) scores equal to the training label counts: the majority class ranks first.

    Ties are broken by label order (the ranking uses a stable sort), so the result is deterministic.
    """
    num_classes = _check_num_classes(num_classes)
    train_labels = np.asarray(train_labels)
    if train_labels.size == 0:
        raise ValueError("train_labels is empty: the majority class needs at least one labelled post")
    train_labels = _check_labels(train_labels, num_classes, "train_labels", len(train_labels))
    if isinstance(num_queries, bool) or not isinstance(num_queries, (int, np.integer)) or num_queries < 1:
        raise ValueError(f"num_queries must be a positive integer, got {num_queries!r}")
    counts = np.bincount(train_labels, minlength=num_classes).astype(np.float32)
    return np.broadcast_to(counts, (int(num_queries), num_classes)).copy()


def prompt_similarity_scores(query_embeds, place_embeds):
    """Zero-shot: cosine similarity of each query embedding with each place's prompt embedding, (N, C)."""
    place_embeds = _normalize_rows(_check_matrix(place_embeds, "place_embeds"))
    query_embeds = _check_matrix(query_embeds, "query_embeds", place_embeds.shape[1])
    return _normalize_rows(query_embeds) @ place_embeds.T


def class_prototypes(support_embeds, support_labels, num_classes):
    """(C, D) L2-normalised mean of each class's support embeddings; ValueError naming a class with none."""
    num_classes = _check_num_classes(num_classes)
    support_embeds = _check_matrix(support_embeds, "support_embeds")
    support_labels = _check_labels(support_labels, num_classes, "support_labels", len(support_embeds))
    counts = np.bincount(support_labels, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(f"class {empty[0]} has no support post ({empty.size} class(es) without any): "
                         "every class needs at least one to have a prototype")
    sums = np.zeros((num_classes, support_embeds.shape[1]), dtype=np.float64)
    np.add.at(sums, support_labels, _normalize_rows(support_embeds))
    return _normalize_rows(sums / counts[:, None]).astype(np.float32)


def prototype_scores(query_embeds, support_embeds, support_labels, num_classes, place_embeds=None, prompt_weight=1.0):
    """Cosine of each query with each class prototype, (N, C).

    With `place_embeds` (C, D), each prototype is replaced by normalize(prototype + prompt_weight * prompt):
    the prompt carries the place's name, which helps most when K is small.
    """
    prototypes = class_prototypes(support_embeds, support_labels, num_classes)
    if place_embeds is not None:
        place_embeds = _check_matrix(place_embeds, "place_embeds", prototypes.shape[1])
        if len(place_embeds) != len(prototypes):
            raise ValueError(f"place_embeds has {len(place_embeds)} rows but there are {len(prototypes)} classes")
        if not np.isfinite(prompt_weight) or prompt_weight < 0:
            raise ValueError(f"prompt_weight must be a finite number >= 0, got {prompt_weight}")
        prototypes = _normalize_rows(prototypes + prompt_weight * _normalize_rows(place_embeds))
    query_embeds = _check_matrix(query_embeds, "query_embeds", prototypes.shape[1])
    return _normalize_rows(query_embeds) @ prototypes.T


def _class_probabilities(classifier, features, num_classes):
    """predict_proba expanded to all `num_classes` columns (classes absent from training get probability 0)."""
    probabilities = np.zeros((features.shape[0], num_classes), dtype=np.float32)
    probabilities[:, classifier.classes_] = classifier.predict_proba(features)
    return probabilities


def _fit_logistic_regression(features, labels, C, max_iter):
    if len(np.unique(labels)) < 2:
        raise ValueError("logistic regression needs training posts of at least two classes")
    if not np.isfinite(C) or C <= 0:
        raise ValueError(f"C must be a positive number, got {C}")
    with warnings.catch_warnings():
        # One post per class is the K=1 setting, not a regression problem as scikit-learn suspects.
        warnings.filterwarnings("ignore", message="The number of unique classes is greater than 50%")
        return LogisticRegression(C=C, max_iter=max_iter).fit(features, labels)


def logistic_regression_scores(train_embeds, train_labels, query_embeds, num_classes, C=10.0, max_iter=1000):
    """Class probabilities (N, C) of a multinomial logistic regression (L2, lbfgs) fitted on frozen embeddings.

    The default C=10 regularises weakly: unit-length embeddings have small coordinates.
    """
    num_classes = _check_num_classes(num_classes)
    train_embeds = _check_matrix(train_embeds, "train_embeds")
    train_labels = _check_labels(train_labels, num_classes, "train_labels", len(train_embeds))
    query_embeds = _check_matrix(query_embeds, "query_embeds", train_embeds.shape[1])
    classifier = _fit_logistic_regression(train_embeds, train_labels, C, max_iter)
    return _class_probabilities(classifier, query_embeds, num_classes)


def _check_texts(texts, name):
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} is empty")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}] must be a string, got {type(text).__name__}")
    return texts


def tfidf_logistic_regression_scores(train_texts, train_labels, query_texts, num_classes, analyzer="char_wb",
                                     ngram_range=(1, 5), C=10.0, sublinear_tf=True, max_iter=1000):
    """Class probabilities (N, C) of logistic regression on character n-gram TF-IDF features of the raw text.

    The vocabulary and IDF weights are fitted on the training texts only (the query set stays unseen).
    """
    num_classes = _check_num_classes(num_classes)
    train_texts = _check_texts(train_texts, "train_texts")
    query_texts = _check_texts(query_texts, "query_texts")
    train_labels = _check_labels(train_labels, num_classes, "train_labels", len(train_texts))
    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=tuple(ngram_range), sublinear_tf=sublinear_tf,
                                 lowercase=True, dtype=np.float32)
    train_features = vectorizer.fit_transform(train_texts)
    classifier = _fit_logistic_regression(train_features, train_labels, C, max_iter)
    return _class_probabilities(classifier, vectorizer.transform(query_texts), num_classes)


__all__ = [
    "class_prototypes",
    "logistic_regression_scores",
    "majority_class_scores",
    "prompt_similarity_scores",
    "prototype_scores",
    "tfidf_logistic_regression_scores",
]
