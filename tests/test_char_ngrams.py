"""The character n-gram channel of the post encoder: featurising, TF-IDF weights, the model and train.py paths."""

import json
import zlib

import numpy as np
import pytest
import torch

from modeling_contrastgeo import ContrastGeoModel
from modeling_contrastgeo.char_ngrams import CharNgramEncoder, CharNgramFeaturizer
from tests.tiny_models import SWISS_PLACES

POSTS = ["Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht isch s Beschte", "Bärn isch schön", "Lozärn!"]
# Large enough that the few n-grams of these posts do not collide.
NO_COLLISION_BUCKETS = 2 ** 30


def build(tiny_encoder, **config_kwargs):
    torch.manual_seed(0)
    config_kwargs = {"projection_dim": 16, "num_hard_negatives": 2, **config_kwargs}
    return ContrastGeoModel.from_text_encoder(tiny_encoder, places=SWISS_PLACES, **config_kwargs)


def test_featurizer_counts_word_bounded_ngrams_with_sublinear_weights():
    featurizer = CharNgramFeaturizer(NO_COLLISION_BUCKETS, 1, 2)
    # " ab " -> a, b, " a", ab, "b "; the second word repeats every one of them.
    assert sorted(featurizer.bucket_counts("Ab ab").values()) == [2, 2, 2, 2, 2]
    inputs = featurizer(["Ab ab", "x", "   "])
    assert inputs["char_ngram_ids"].shape == inputs["char_ngram_weights"].shape == (3, 5)
    assert torch.allclose(inputs["char_ngram_weights"][0], torch.full((5,), 1 + np.log(2), dtype=torch.float32))
    assert (inputs["char_ngram_ids"][1] > 0).sum() == 3  # x, " x", "x "
    assert inputs["char_ngram_ids"][2].eq(0).all() and inputs["char_ngram_weights"][2].eq(0).all()
    assert torch.equal(featurizer(["Ab ab"])["char_ngram_ids"], CharNgramFeaturizer(NO_COLLISION_BUCKETS, 1, 2)(
        ["Ab ab"])["char_ngram_ids"])


def test_bag_weights_are_scikit_learns_tfidf_rows():
    """Same n-grams (char_wb 2-3, lower-cased), smoothed IDF, sublinear TF, L2 norm: the same weight per n-gram."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), sublinear_tf=True)
    expected = vectorizer.fit_transform(POSTS).toarray()
    featurizer = CharNgramFeaturizer(NO_COLLISION_BUCKETS, 2, 3)
    # Re-index the hashed buckets 1..V so that the encoder's IDF buffer is small.
    buckets = sorted({bucket for post in POSTS for bucket in featurizer.bucket_counts(post)})
    assert len(buckets) == expected.shape[1]
    index = {bucket: i + 1 for i, bucket in enumerate(buckets)}
    encoder = CharNgramEncoder(num_buckets=len(buckets) + 1, output_dim=4)
    encoder.fit_idf([{index[b]: c for b, c in featurizer.bucket_counts(post).items()} for post in POSTS])
    inputs = featurizer(POSTS)
    ids = inputs["char_ngram_ids"].apply_(lambda bucket: index.get(bucket, 0))
    weights = torch.zeros(len(POSTS), len(buckets) + 1).scatter_add_(
        1, ids, encoder.tfidf_weights(ids, inputs["char_ngram_weights"])).numpy()
    for column, gram in enumerate(vectorizer.get_feature_names_out()):
        bucket = zlib.crc32(gram.encode("utf-8")) % (NO_COLLISION_BUCKETS - 1) + 1
        np.testing.assert_allclose(weights[:, index[bucket]], expected[:, column], atol=1e-6, err_msg=repr(gram))


def test_idf_ignores_buckets_unseen_in_training():
    featurizer = CharNgramFeaturizer(2 ** 16, 1, 3)
    encoder = CharNgramEncoder(2 ** 16, 4)
    encoder.fit_idf([featurizer.bucket_counts("aa bb")])
    seen = set(featurizer.bucket_counts("aa bb"))
    assert {int(i) for i in torch.nonzero(encoder.idf).flatten()} == seen
    with torch.no_grad():
        encoder.bag.weight.normal_()
    unseen_only, half_seen = featurizer(["zzz qqq"]), featurizer(["zzz aa"])
    assert not set(unseen_only["char_ngram_ids"][0].tolist()) & seen
    assert encoder(**unseen_only).abs().sum() == 0
    # Unseen n-grams take no share of the L2 norm: "zzz aa" embeds as "aa" alone.
    torch.testing.assert_close(encoder(**half_seen), encoder(**featurizer(["aa"])))


def test_untrained_channel_leaves_the_embeddings_unchanged(tiny_encoder):
    # No random projection: the embeddings depend on the loaded encoder weights alone.
    plain = build(tiny_encoder, projection_dim=None)
    with_ngrams = build(tiny_encoder, projection_dim=None, char_ngram_buckets=1024)
    with_ngrams.fit_char_ngram_idf(POSTS)
    torch.testing.assert_close(with_ngrams.encode_posts(POSTS), plain.encode_posts(POSTS))
    assert with_ngrams.char_ngram_encoder.bag.weight.abs().sum() == 0


def test_channel_trains_saves_and_changes_predictions(tiny_encoder, tmp_path):
    model = build(tiny_encoder, char_ngram_buckets=1024)
    model.fit_char_ngram_idf(POSTS)
    output = model(**model.tokenize_posts(POSTS), **model.tokenize_places(SWISS_PLACES),
                   labels=torch.tensor([0, 2, 1, 3]))
    output.loss.backward()
    assert model.char_ngram_encoder.bag.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.char_ngram_encoder.bag.weight.normal_()
    before = model.encode_posts(POSTS)
    model.save_pretrained(tmp_path)
    loaded = ContrastGeoModel.from_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["char_ngram_buckets"] == 1024
    torch.testing.assert_close(loaded.encode_posts(POSTS), before)
    torch.testing.assert_close(loaded.char_ngram_encoder.idf, model.char_ngram_encoder.idf)
    with torch.no_grad():
        model.char_ngram_encoder.bag.weight.zero_()
    assert not torch.allclose(before, model.encode_posts(POSTS))
    assert len(loaded.geolocate(POSTS, top_k=2, rerank=True)) == len(POSTS)


def test_model_names_missing_ngram_inputs_and_bad_settings(tiny_encoder):
    model = build(tiny_encoder, char_ngram_buckets=1024)
    encoded = model.tokenize_posts(POSTS)
    with pytest.raises(ValueError, match="char_ngram_ids and char_ngram_weights"):
        model(input_ids=encoded["input_ids"], **model.tokenize_places(SWISS_PLACES))
    with pytest.raises(ValueError, match="no character n-gram channel"):
        build(tiny_encoder).fit_char_ngram_idf(POSTS)
    with pytest.raises(ValueError, match="char_ngram_range"):
        build(tiny_encoder, char_ngram_range=[3, 2])
    with pytest.raises(ValueError, match="char_ngram_buckets"):
        build(tiny_encoder, char_ngram_buckets=1)


def _dense_tfidf(encoder, inputs):
    """(N, num_buckets) TF-IDF rows of the featurised posts, as the encoder weighs them."""
    weights = encoder.tfidf_weights(inputs["char_ngram_ids"], inputs["char_ngram_weights"])
    return torch.zeros(weights.shape[0], encoder.idf.shape[0]).scatter_add_(1, inputs["char_ngram_ids"], weights)


def test_centroid_start_gives_nearest_centroid_scores_on_the_places():
    featurizer = CharNgramFeaturizer(2 ** 12, 1, 3)
    labels = torch.tensor([0, 1, 0, 2])
    place_embeds = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    encoder = CharNgramEncoder(2 ** 12, 8, table_dim=4)
    encoder.fit_idf(featurizer.bucket_counts(post) for post in POSTS)
    train = featurizer(POSTS)
    encoder.init_from_class_weights(encoder.class_centroids(**train, labels=labels, num_classes=3), place_embeds,
                                    scale=5.0, ridge=0.0)
    rows = _dense_tfidf(encoder, train)
    centroids = torch.nn.functional.normalize(torch.stack([rows[labels == c].sum(0) for c in range(3)]), dim=-1)
    queries = featurizer(["Bärn isch schön", "Basel Fasnacht", "nothing seen qqq"])
    expected = 5.0 * _dense_tfidf(encoder, queries) @ centroids.t()
    # Without ridge the lift is the exact pseudo-inverse: the channel's dot product with place c is its score.
    torch.testing.assert_close(encoder(**queries) @ place_embeds.t(), expected, atol=1e-4, rtol=1e-4)
    assert expected[0].argmax() == 0 and expected[1].argmax() == 1
    assert encoder.bag.weight[:, 3].abs().sum() == 0  # rank 3: the fourth table column stays at zero


def test_centroid_start_keeps_the_best_low_rank_part_when_places_outnumber_the_table():
    featurizer = CharNgramFeaturizer(2 ** 12, 1, 3)
    labels, place_embeds = torch.tensor([0, 1, 2, 3]), torch.nn.functional.normalize(
        torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    train = featurizer(POSTS)

    def channel_matrix(table_dim):
        encoder = CharNgramEncoder(2 ** 12, 8, table_dim=table_dim)
        encoder.fit_idf(featurizer.bucket_counts(post) for post in POSTS)
        encoder.init_from_class_weights(encoder.class_centroids(**train, labels=labels, num_classes=4), place_embeds)
        return encoder.projection.weight @ encoder.bag.weight.t()

    full, rank_two = channel_matrix(4), channel_matrix(2)
    singular_values = torch.linalg.svdvals(full)
    assert torch.linalg.matrix_rank(rank_two, rtol=1e-4) == 2
    # Eckart-Young: the truncation error is the dropped singular values, so it kept the two largest directions.
    torch.testing.assert_close(torch.linalg.norm(full - rank_two) ** 2, (singular_values[2:4] ** 2).sum(),
                               rtol=1e-3, atol=1e-6)


def test_start_with_more_places_than_embedding_dimensions_fills_what_the_embedding_can_hold():
    # 6 places in a 3-dimensional embedding, a table of 4: the channel's map has rank 3 at most.
    featurizer = CharNgramFeaturizer(2 ** 12, 1, 3)
    posts = POSTS + ["Grüezi Basel", "schön id Badi"]
    place_embeds = torch.nn.functional.normalize(torch.randn(6, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    encoder = CharNgramEncoder(2 ** 12, 3, table_dim=4)
    encoder.fit_idf(featurizer.bucket_counts(post) for post in posts)
    inputs = featurizer(posts)
    encoder.init_from_class_weights(encoder.class_centroids(**inputs, labels=torch.arange(6), num_classes=6),
                                    place_embeds)
    assert encoder.bag.weight[:, :3].abs().sum() > 0 and encoder.bag.weight[:, 3].abs().sum() == 0
    assert torch.linalg.matrix_rank(encoder.projection.weight @ encoder.bag.weight.t(), rtol=1e-4) == 3


def test_logistic_regression_start_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    featurizer = CharNgramFeaturizer(2 ** 12, 1, 3)
    posts = POSTS + ["Grüezi Basel", "hüt isch Fasnacht", "schön id Badi"]
    labels = np.array([0, 1, 2, 3, 1, 1, 0])
    encoder = CharNgramEncoder(2 ** 12, 8, table_dim=4)
    encoder.fit_idf(featurizer.bucket_counts(post) for post in posts)
    inputs = featurizer(posts)
    weights = encoder.logistic_regression_weights(**inputs, labels=labels, num_classes=4, inverse_regularization=10.0,
                                                  max_iter=500)
    rows = _dense_tfidf(encoder, inputs).numpy()
    reference = LogisticRegression(C=10.0, fit_intercept=False, tol=1e-10, max_iter=10000).fit(rows, labels)
    np.testing.assert_allclose(weights.numpy(), reference.coef_, atol=2e-3)
    assert np.abs(reference.coef_).max() > 0.5  # a fit, not the zero start
    with pytest.raises(ValueError, match="index the 4 places"):
        encoder.logistic_regression_weights(**inputs, labels=[0, 1, 2, 3, 4, 1, 0], num_classes=4)
    with pytest.raises(ValueError, match="no labelled posts"):
        encoder.logistic_regression_weights(**featurizer([]), labels=[], num_classes=4)
    with pytest.raises(ValueError, match="inverse_regularization must be positive"):
        encoder.logistic_regression_weights(**inputs, labels=labels, num_classes=4, inverse_regularization=0)
    with pytest.raises(ValueError, match=r"class_weights must be \(4 places"):
        encoder.init_from_class_weights(torch.zeros(3, 2 ** 12), torch.eye(4, 8))


@pytest.mark.parametrize("start", ["logistic", "centroids"])
def test_model_start_from_labels_recognises_its_training_posts_and_names_bad_input(tiny_encoder, start):
    model = build(tiny_encoder, char_ngram_buckets=1024)
    labels = [0, 2, 1, 3]
    model.fit_char_ngram_idf(POSTS)
    model.init_char_ngram_from_labels(POSTS, labels, start=start, scale=50.0)
    assert not model.training  # back in the mode it was in
    assert [p[0]["name"] for p in model.geolocate(POSTS, top_k=1)] == [SWISS_PLACES[i]["name"] for i in labels]
    with pytest.raises(ValueError, match="one per post"):
        model.init_char_ngram_from_labels(POSTS, labels[:3], start=start)
    with pytest.raises(ValueError, match="index the 4 places"):
        model.init_char_ngram_from_labels(POSTS, [0, 1, 2, 4], start=start)
    training = build(tiny_encoder, char_ngram_buckets=1024).train()
    training.init_char_ngram_from_labels(POSTS, labels, start=start)
    assert training.training
    with pytest.raises(ValueError, match="no character n-gram channel"):
        build(tiny_encoder).init_char_ngram_from_labels(POSTS, labels, start=start)
    with pytest.raises(ValueError, match="no place embeddings"):
        build(tiny_encoder, location_mode="classifier", char_ngram_buckets=1024).init_char_ngram_from_labels(
            POSTS, labels, start=start)
    with pytest.raises(ValueError, match="start must be one of"):
        model.init_char_ngram_from_labels(POSTS, labels, start="random")


def test_cross_validated_scale_weighs_the_channel_by_what_it_predicts_on_held_out_posts(tiny_encoder):
    model = build(tiny_encoder, char_ngram_buckets=4096)
    # Each place has its own words: out of fold, the n-grams name the place (the tiny encoder's embeddings do not).
    words = ["chuchichäschtli", "fasnachtsbummel", "aareschwumm", "kapellbrugg"]
    posts = [f"{words[label]} {words[label]}li nummer {index}" for index in range(4) for label in range(4)]
    labels = [label for _ in range(4) for label in range(4)]
    model.fit_char_ngram_idf(posts)
    assert model.cross_validated_char_ngram_scale(posts, labels) > 0.0
    # The same post under every label: nothing to learn, and the smallest weight wins the tie.
    same = ["hüt isch schön"] * 16
    model.fit_char_ngram_idf(same)
    assert model.cross_validated_char_ngram_scale(same, labels) == 0.0
    # One post for a label leaves no fold to hold out: the start's default weight.
    assert model.cross_validated_char_ngram_scale(posts[:4] + posts[4:7], labels[:7]) == 1.0
    used = model.init_char_ngram_from_labels(posts, labels, scale="cross-validated")
    assert used == model.cross_validated_char_ngram_scale(posts, labels)
    with pytest.raises(ValueError, match="index the 4 places"):
        model.cross_validated_char_ngram_scale(posts, [label + 1 for label in labels])



@pytest.mark.parametrize("start", ["logistic", "centroids"])
def test_out_of_fold_scores_are_those_of_a_channel_fitted_on_the_other_folds_alone(tiny_encoder, start):
    """Nothing of a held-out post reaches its fold's fit, the IDF included: an IDF fitted on every post gives the
    held-out post's own rare n-grams weight and shrinks the n-grams the fold's classifier knows."""
    model = build(tiny_encoder, char_ngram_buckets=4096)
    words = ["chuchichäschtli", "fasnachtsbummel", "aareschwumm", "kapellbrugg"]
    # Every post has a word of its own: only the held-out post holds it.
    posts = [f"{words[label]} nummer {'xyz' * (index + 1)}{label}" for index in range(3) for label in range(4)]
    labels = torch.tensor([label for _ in range(3) for label in range(4)])
    folds = torch.arange(12) // 4
    model.fit_char_ngram_idf(posts)
    fitted_idf = model.char_ngram_encoder.idf.clone()
    scores = model._out_of_fold_channel_scores(model._char_ngram_inputs(posts), labels, folds, start, 10.0)
    assert torch.equal(model.char_ngram_encoder.idf, fitted_idf)  # the model's own IDF is left as fitted
    for fold in range(3):
        kept = [post for post, post_fold in zip(posts, folds) if post_fold != fold]
        held = [post for post, post_fold in zip(posts, folds) if post_fold == fold]
        alone = build(tiny_encoder, char_ngram_buckets=4096)
        alone.fit_char_ngram_idf(kept)
        weights = alone._class_weights(alone._char_ngram_inputs(kept), labels[folds != fold], start, 10.0)
        held_inputs = alone._char_ngram_inputs(held)
        held_tfidf = alone.char_ngram_encoder.tfidf_weights(**held_inputs)
        expected = (held_tfidf.unsqueeze(1) * weights[:, held_inputs["char_ngram_ids"]].permute(1, 0, 2)).sum(-1)
        torch.testing.assert_close(scores[folds == fold], expected)
