"""A character n-gram channel for the post encoder: a hashed, TF-IDF weighted bag of n-grams added to the
sentence embedding.

Why: sub-word sentence encoders such as MiniLM barely see dialect spelling (Swiss German, ekavian vs ijekavian),
while character n-grams do: a TF-IDF + logistic regression over them is the classic strong baseline of dialect
geolocation. The bag is a linear map of TF-IDF features into the embedding space, so the contrastive loss trains it
as a multinomial logistic regression whose class vectors are the place embeddings.

- Featurising (`CharNgramFeaturizer`, plain Python, deterministic across processes and sessions): words are
  lower-cased and padded with a space, as scikit-learn's `char_wb` analyzer; each n-gram is hashed (CRC-32) into
  `num_buckets - 1` buckets (bucket 0 pads); the weight of a bucket is the sublinear term frequency 1 + log(count).
- Encoding (`CharNgramEncoder`): weights times the inverse document frequency of each bucket, L2-normalised per
  post, then an `EmbeddingBag` sum into a `table_dim`-sized space and a linear map to the embedding size. The IDF is a
  buffer fitted on the training posts (`fit_idf`); buckets never seen there get weight 0, like n-grams outside a
  TF-IDF vocabulary. The table starts at zero, so an untrained channel leaves the sentence embedding unchanged.
- Starting point (`init_char_ngram_from_labels`, before training): the channel starts as a linear classifier of the
  training posts in TF-IDF space (a multinomial logistic regression, or nearest class centroids) whose class scores
  are written onto the place embeddings (`init_from_class_weights`), instead of at zero. Trained from zero by AdamW,
  the channel memorises the rare n-grams of the shots (training loss ~0 within 100 steps, every bucket's row moving
  at the same pace); from a fitted linear model it starts where a classifier that generalises already is. Measured
  with MiniLM frozen, training only the channel on vardial-ch (query top-1 %, K=16 seeds 0-1, K=4 seeds 0-1): zero
  start 8.0, 7.7, 5.4, 4.0; centroid start 13.3, 12.6, 8.6, 6.8; char TF-IDF + logistic regression 14.2, 13.9, 9.1,
  6.7. In the full model before any training step (vardial-ch K=16 seed 0, top-1 % / median km): centroid start
  10.9 / 37, logistic start 13.1 / 34.
  The table is narrow (64 by default) because its dense AdamW update dominates the channel's cost: 384 wide, 65,536
  buckets made a fully fine-tuned ContrastGeo step 1.70x a classifier step, 64 wide 1.54x, as without the channel
  (benchmarks/speed_training.py in early December 2026, when the encoder was fully fine-tuned by default; with LoRA
  and this table the step is 1.1x, benchmarks/RESULTS_speed_training.md); a rank of 64 still spans as many place
  directions as most label sets.
"""

import math
import zlib
from collections import Counter

import numpy as np
import torch
from torch import nn


# How `init_char_ngram_from_labels` can start the channel, and the default weight of its scores for each.
DEFAULT_START_SCALES = {"logistic": 1.0, "centroids": 10.0}
CHANNEL_STARTS = tuple(DEFAULT_START_SCALES)
# `scale=CROSS_VALIDATED` picks the weight of the start's scores among these multiples of the start's default, by
# out-of-fold accuracy on the training posts (`cross_validated_char_ngram_scale`).
CROSS_VALIDATED = "cross-validated"
CROSS_VALIDATION_SCALE_FACTORS = (0.0, 0.25, 0.5, 1.0, 2.0)
MAX_CROSS_VALIDATION_FOLDS = 4


class CharNgramFeaturizer:
    """Texts -> `char_ngram_ids` (B, L) long and `char_ngram_weights` (B, L) float, zero-padded."""

    def __init__(self, num_buckets: int, min_n: int, max_n: int):
        if num_buckets < 2:
            raise ValueError(f"char_ngram_buckets must be at least 2 (bucket 0 pads), got {num_buckets}")
        if not 1 <= min_n <= max_n:
            raise ValueError(f"char n-gram range must satisfy 1 <= min <= max, got [{min_n}, {max_n}]")
        self.num_buckets = num_buckets
        self.min_n = min_n
        self.max_n = max_n

    def bucket_counts(self, text: str) -> Counter:
        """Count of each bucket id in one text."""
        grams = []
        for word in text.lower().split():
            padded = f" {word} "
            for n in range(self.min_n, min(self.max_n, len(padded)) + 1):
                if n == 1:  # the pads alone are no n-gram; a longer n-gram always holds a letter of the word
                    grams.extend(padded[1:-1])
                else:
                    grams.extend([padded[start:start + n] for start in range(len(padded) - n + 1)])
        # One list comprehension and Counter's C loop: this runs for every post geolocated, beside the encoder.
        modulus, crc32 = self.num_buckets - 1, zlib.crc32
        return Counter([crc32(gram.encode("utf-8")) % modulus + 1 for gram in grams])

    def __call__(self, texts) -> dict:
        bags = [self.bucket_counts(text) for text in texts]
        length = max([len(bag) for bag in bags] + [1])
        ids = np.zeros((len(bags), length), dtype=np.int64)
        weights = np.zeros((len(bags), length), dtype=np.float32)
        for row, bag in enumerate(bags):  # filled as numpy rows: a torch.tensor per post cost as much as the counting
            buckets = sorted(bag)
            ids[row, :len(buckets)] = buckets
            weights[row, :len(buckets)] = [1.0 + math.log(bag[bucket]) for bucket in buckets]
        return {"char_ngram_ids": torch.from_numpy(ids), "char_ngram_weights": torch.from_numpy(weights)}


def smoothed_idf(document_frequency: torch.Tensor, num_posts: int) -> torch.Tensor:
    """log((1 + N) / (1 + df)) + 1, as scikit-learn's smoothed IDF; 0 for buckets no post contains."""
    idf = torch.log((1.0 + num_posts) / (1.0 + document_frequency)) + 1.0
    return torch.where(document_frequency > 0, idf, torch.zeros_like(idf))


class CharNgramEncoder(nn.Module):
    """(B, L) bucket ids and term weights -> (B, output_dim) embedding of the post's n-gram bag."""

    def __init__(self, num_buckets: int, output_dim: int, table_dim: int = 64):
        super().__init__()
        self.bag = nn.EmbeddingBag(num_buckets, table_dim, mode="sum", padding_idx=0)
        self.projection = nn.Linear(table_dim, output_dim, bias=False)
        self.register_buffer("idf", torch.ones(num_buckets))
        with torch.no_grad():
            self.bag.weight.zero_()

    @torch.no_grad()
    def fit_idf(self, bucket_counts) -> None:
        """Smoothed IDF, log((1 + N) / (1 + df)) + 1 as scikit-learn's, from one `Counter` per training post;
        buckets absent from every post get 0 (they are ignored, as out-of-vocabulary n-grams)."""
        bucket_counts = list(bucket_counts)
        document_frequency = torch.zeros_like(self.idf)
        for counts in bucket_counts:
            if counts:
                document_frequency[torch.tensor(list(counts), device=self.idf.device)] += 1
        self.idf.copy_(smoothed_idf(document_frequency, len(bucket_counts)))

    def idf_of_posts(self, char_ngram_ids: torch.Tensor) -> torch.Tensor:
        """The IDF `fit_idf` would fit on these featurised posts (a row holds each bucket once), without setting it:
        a cross-validation fold's IDF must not see the posts it holds out."""
        document_frequency = torch.bincount(char_ngram_ids.flatten(), minlength=self.idf.shape[0]).to(self.idf)
        document_frequency[0] = 0  # padding
        return smoothed_idf(document_frequency, char_ngram_ids.shape[0])

    def _check_labels(self, char_ngram_ids, labels, num_classes) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.idf.device)
        if labels.ndim != 1 or labels.shape[0] != char_ngram_ids.shape[0]:
            raise ValueError(f"labels must be one per post: got shape {tuple(labels.shape)} for "
                             f"{char_ngram_ids.shape[0]} posts")
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels must index the {num_classes} places, got values in "
                             f"[{labels.min().item()}, {labels.max().item()}]")
        return labels

    @torch.no_grad()
    def class_centroids(self, char_ngram_ids, char_ngram_weights, labels, num_classes, idf=None) -> torch.Tensor:
        """(C, num_buckets) L2-normalised mean TF-IDF vector of each label's posts (zeros for a label without
        posts): `centroids @ tfidf(post)` are nearest-centroid scores."""
        labels = self._check_labels(char_ngram_ids, labels, num_classes)
        weights = self.tfidf_weights(char_ngram_ids, char_ngram_weights, idf)
        centroids = torch.zeros(num_classes, self.idf.shape[0], device=self.idf.device)
        centroids.index_put_((labels[:, None].expand_as(char_ngram_ids), char_ngram_ids), weights, accumulate=True)
        centroids[:, 0] = 0.0
        return nn.functional.normalize(centroids, dim=-1)

    def logistic_regression_weights(self, char_ngram_ids, char_ngram_weights, labels, num_classes,
                                    inverse_regularization=10.0, max_iter=200, idf=None) -> torch.Tensor:
        """(C, num_buckets) class weights of a multinomial logistic regression on the posts' TF-IDF vectors.

        The objective is scikit-learn's `LogisticRegression(C=inverse_regularization)` without the intercept (the
        channel has none; few-shot classes are balanced): `C * sum of cross-entropies + ||W||^2 / 2`, minimised by
        L-BFGS over the buckets the posts contain (the others get 0, the penalised optimum of an unused feature).
        """
        labels = self._check_labels(char_ngram_ids, labels, num_classes)
        if not labels.numel():
            raise ValueError("no labelled posts to fit the logistic regression on")
        if inverse_regularization <= 0:
            raise ValueError(f"inverse_regularization must be positive, got {inverse_regularization}")
        with torch.no_grad():
            weights = self.tfidf_weights(char_ngram_ids, char_ngram_weights, idf)
            seen_buckets, local_ids = torch.unique(char_ngram_ids, return_inverse=True)
            weights = torch.where(char_ngram_ids == 0, torch.zeros_like(weights), weights)  # as padding_idx=0
        table = torch.zeros(seen_buckets.shape[0], num_classes, device=self.idf.device, requires_grad=True)
        # A short history: each kept pair is two copies of the (buckets, classes) table.
        optimizer = torch.optim.LBFGS([table], max_iter=max_iter, history_size=10, tolerance_grad=1e-6,
                                      line_search_fn="strong_wolfe")
        penalty = 0.5 / (inverse_regularization * labels.shape[0])  # the objective above, divided by C * N

        def closure():
            optimizer.zero_grad()
            logits = nn.functional.embedding_bag(local_ids, table, per_sample_weights=weights, mode="sum")
            loss = nn.functional.cross_entropy(logits, labels) + penalty * table.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        class_weights = torch.zeros(num_classes, self.idf.shape[0], device=self.idf.device)
        class_weights[:, seen_buckets] = table.detach().t()  # bucket 0 (padding) has only the penalty: it stays 0
        return class_weights

    @torch.no_grad()
    def init_from_class_weights(self, class_weights, place_embeds, scale=1.0, ridge=0.01) -> None:
        """Set the channel to `scale * lift @ class_weights`, truncated to the table's rank.

        `class_weights` (C, num_buckets) score a post's TF-IDF vector for each place (`class_centroids`,
        `logistic_regression_weights`); `lift` (D, C) is the ridge-regularised pseudo-inverse of the place
        embeddings (C, D), so the dot product of the channel's output with place c is about the post's score for c:
        the channel pushes a post towards the places whose n-grams it shares. `scale` weighs these scores against
        the sentence embedding (norm ~0.7 for MiniLM), `ridge` keeps the lift bounded when place embeddings are
        nearly collinear (prompts of nearby towns). The top `table_dim` singular directions go into the table
        (orthonormal columns) and the linear map (scaled by the singular values); the map's other columns keep
        their random start, the table's stay zero.
        """
        num_places = place_embeds.shape[0]
        if class_weights.shape != (num_places, self.idf.shape[0]):
            raise ValueError(f"class_weights must be ({num_places} places, {self.idf.shape[0]} buckets), got "
                             f"{tuple(class_weights.shape)}")
        lift = self.score_lift(place_embeds.to(class_weights), ridge)
        left, singular_values, right = torch.linalg.svd(scale * lift @ class_weights, full_matrices=False)
        rank = min(self.bag.weight.shape[1], num_places, singular_values.shape[0])  # the embedding size bounds it too
        self.bag.weight.zero_()
        self.bag.weight[:, :rank] = right[:rank].t().to(self.bag.weight)
        self.projection.weight[:, :rank] = (left[:, :rank] * singular_values[:rank]).to(self.projection.weight)

    @staticmethod
    def score_lift(place_embeds, ridge=0.01) -> torch.Tensor:
        """(D, C) ridge pseudo-inverse of the place embeddings (C, D): `lift @ scores` is a vector whose dot product
        with place c is about `scores[c]` (see `init_from_class_weights`)."""
        gram = place_embeds @ place_embeds.t()
        eye = torch.eye(place_embeds.shape[0], device=gram.device, dtype=gram.dtype)
        return torch.linalg.solve(gram + ridge * eye, place_embeds).t()

    def tfidf_weights(self, char_ngram_ids: torch.Tensor, char_ngram_weights: torch.Tensor,
                      idf: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) TF-IDF weight of each bucket of each post, L2-normalised per post (0 at padding); with the fitted
        IDF unless `idf` is given (`idf_of_posts`)."""
        idf = self.idf if idf is None else idf
        weights = char_ngram_weights.to(idf.dtype) * idf[char_ngram_ids]
        return weights / weights.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def forward(self, char_ngram_ids: torch.Tensor, char_ngram_weights: torch.Tensor) -> torch.Tensor:
        weights = self.tfidf_weights(char_ngram_ids, char_ngram_weights)
        bag = self.bag(char_ngram_ids, per_sample_weights=weights.to(self.bag.weight.dtype))
        return self.projection(bag)


class CharNgramChannelMixin:
    """The model-level n-gram steps of `ContrastGeoModel` (its `char_ngram_encoder` is None when the channel is
    off)."""

    def _require_char_ngram_channel(self):
        if self.char_ngram_encoder is None:
            raise ValueError("this model has no character n-gram channel (config.char_ngram_buckets is 0)")

    @property
    def char_ngram_featurizer(self) -> CharNgramFeaturizer | None:
        """Texts -> the `char_ngram_ids` / `char_ngram_weights` inputs (None when the channel is off)."""
        if self.char_ngram_encoder is None:
            return None
        return CharNgramFeaturizer(self.config.char_ngram_buckets, *self.config.char_ngram_range)

    def _char_ngram_inputs(self, texts) -> dict:
        """The featurizer's inputs for `texts` on the channel's device (a trained model may sit on a GPU)."""
        device = self.char_ngram_encoder.idf.device
        return {name: value.to(device) for name, value in self.char_ngram_featurizer(texts).items()}

    def fit_char_ngram_idf(self, texts) -> None:
        """Fit the n-gram channel's inverse document frequencies on the training posts (before training)."""
        self._require_char_ngram_channel()
        featurizer = self.char_ngram_featurizer
        self.char_ngram_encoder.fit_idf(featurizer.bucket_counts(text) for text in texts)

    def _class_weights(self, inputs, labels, start, inverse_regularization, idf=None):
        num_places = len(self.config.places)
        if start == "logistic":
            return self.char_ngram_encoder.logistic_regression_weights(
                **inputs, labels=labels, num_classes=num_places, inverse_regularization=inverse_regularization, idf=idf)
        return self.char_ngram_encoder.class_centroids(**inputs, labels=labels, num_classes=num_places, idf=idf)

    def _check_channel_start(self, start):
        self._require_char_ngram_channel()
        if start not in CHANNEL_STARTS:
            raise ValueError(f"start must be one of {CHANNEL_STARTS}, got {start!r}")
        if self.classifier_head is not None:
            raise ValueError("a classifier model (location_mode='classifier') has no place embeddings to map the "
                             "class weights onto")
        if not self.config.places:
            raise ValueError("the model has no places (`set_places`): the class weights are mapped onto their "
                             "embeddings")

    def init_char_ngram_from_labels(self, texts, labels, start="logistic", scale=None, ridge=0.01,
                                    inverse_regularization=10.0) -> float:
        """Start the n-gram channel as a linear classifier of the labelled training posts, mapped onto the current
        place embeddings (labels index `config.places`); after `fit_char_ngram_idf` (else the weights are plain
        term frequencies), before training. Returns the scale used.

        `start`: "logistic" (a multinomial logistic regression on the posts' TF-IDF vectors, scikit-learn's C =
        `inverse_regularization`; default `scale` 1) or "centroids" (nearest-centroid scores; default `scale` 10,
        as cosines are smaller than logits). See `CharNgramEncoder.init_from_class_weights`. `scale="cross-validated"`
        chooses it on the posts themselves (`cross_validated_char_ngram_scale`).
        """
        self._check_channel_start(start)
        texts, labels = list(texts), torch.as_tensor(labels, dtype=torch.long)
        if scale == CROSS_VALIDATED:
            scale = self.cross_validated_char_ngram_scale(texts, labels, start, ridge, inverse_regularization)
        elif scale is None:
            scale = DEFAULT_START_SCALES[start]
        class_weights = self._class_weights(self._char_ngram_inputs(texts), labels, start, inverse_regularization)
        place_embeds = self.gallery_embeddings(self.config.places)  # in eval mode, as at inference
        self.char_ngram_encoder.init_from_class_weights(class_weights, place_embeds, scale=scale, ridge=ridge)
        return float(scale)

    @torch.no_grad()
    def cross_validated_char_ngram_scale(self, texts, labels, start="logistic", ridge=0.01,
                                         inverse_regularization=10.0) -> float:
        """The weight of the channel's start, chosen on the labelled training posts alone.

        Why: how much character n-grams add to the sentence embedding depends on the data (much for dialects, which
        the encoder barely sees; little, or harm from a few shots' memorised n-grams, where the encoder already
        separates the places, e.g. by language). The posts are split into folds (post i of each label goes to fold
        i mod F, F = min(4, the smallest label count)); for each fold the start, its IDF included, is fitted on the
        other folds and the posts of the fold are scored as the model would score them, cos(sentence embedding +
        channel, place embedding). The factor of `CROSS_VALIDATION_SCALE_FACTORS` (times the start's default scale)
        with the best out-of-fold top-1 accuracy wins, the smaller on ties. With one post for some label there is
        nothing to hold out: the start's default scale is returned.
        """
        self._check_channel_start(start)
        texts = list(texts)
        inputs = self._char_ngram_inputs(texts)
        labels = self.char_ngram_encoder._check_labels(inputs["char_ngram_ids"], labels, len(self.config.places))
        counts = torch.bincount(labels, minlength=len(self.config.places))
        num_folds = min(MAX_CROSS_VALIDATION_FOLDS, int(counts[counts > 0].min()))
        default_scale = DEFAULT_START_SCALES[start]
        if num_folds < 2:
            return default_scale
        rank_in_label = torch.zeros_like(labels)
        for label in labels.unique():
            members = (labels == label).nonzero().squeeze(1)
            rank_in_label[members] = torch.arange(members.numel(), device=labels.device)
        folds = rank_in_label % num_folds
        was_training = self.training
        self.eval()
        try:
            place_embeds = self.gallery_embeddings(self.config.places).float()
            sentence_embeds = self._sentence_features(texts).float()
        finally:
            self.train(was_training)
        lift = self.char_ngram_encoder.score_lift(place_embeds, ridge)
        channel_scores = self._out_of_fold_channel_scores(inputs, labels, folds, start, inverse_regularization)
        best_factor, best_accuracy = None, -1.0
        for factor in CROSS_VALIDATION_SCALE_FACTORS:
            post_embeds = nn.functional.normalize(sentence_embeds + default_scale * factor * channel_scores @ lift.t(),
                                                  dim=-1)
            accuracy = ((post_embeds @ place_embeds.t()).argmax(-1) == labels).float().mean().item()
            if accuracy > best_accuracy:
                best_factor, best_accuracy = factor, accuracy
        return default_scale * best_factor

    def _out_of_fold_channel_scores(self, inputs, labels, folds, start, inverse_regularization) -> torch.Tensor:
        """(N, C) class scores of each post by the start fitted on the posts of the other folds alone."""
        scores = torch.zeros(labels.shape[0], len(self.config.places), device=labels.device)
        for fold in folds.unique():
            held, kept = folds == fold, folds != fold
            kept_inputs = {name: value[kept] for name, value in inputs.items()}
            # As the model meets a new post: n-grams that no kept post holds weigh nothing, and the IDF counts the
            # kept posts only (an IDF fitted on every post shrank a held-out post's known n-grams).
            fold_idf = self.char_ngram_encoder.idf_of_posts(kept_inputs["char_ngram_ids"])
            weights = self._class_weights(kept_inputs, labels[kept], start, inverse_regularization, idf=fold_idf)
            held_ids = inputs["char_ngram_ids"][held]
            held_tfidf = self.char_ngram_encoder.tfidf_weights(held_ids, inputs["char_ngram_weights"][held], fold_idf)
            scores[held] = (held_tfidf.unsqueeze(1) * weights[:, held_ids].permute(1, 0, 2)).sum(-1)
        return scores

    def _sentence_features(self, texts, batch_size=64) -> torch.Tensor:
        """(N, D) projected sentence embeddings of posts without the n-gram channel."""
        chunks = []
        for start in range(0, len(texts), batch_size):
            encoded = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                     max_length=self.config.max_post_length, return_tensors="pt").to(self.device)
            pooled, _ = self._encode_tokens(self.text_model, **encoded)
            chunks.append(self.text_projection(pooled))
        return torch.cat(chunks)


__all__ = ["CHANNEL_STARTS", "CROSS_VALIDATED", "CharNgramChannelMixin", "CharNgramEncoder", "CharNgramFeaturizer"]
