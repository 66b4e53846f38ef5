"""Prediction with a ContrastGeo model: `geolocate`, cached galleries of places, calibration.

Data flow: posts -> tokenizer -> text encoder -> pooling -> projection -> post embeddings; the gallery of places
is encoded once and cached (keyed by its content and by the weights' version counters, so any optimizer step or
`load_state_dict` invalidates it) -> cosine * logit scale / calibration temperature -> softmax over the gallery ->
top-k -> optional TLM re-ranking of the top candidates. With a place prior (`config.place_prior`), the calibrated
log-probabilities get the log prior added before the softmax (Bayes' rule; see `place_prior.py`).
"""

import numbers

import torch
from torch import nn

from .place_prior import PLACE_PRIORS, log_place_prior
from .places import normalize_places, places_fingerprint, resolve_gallery, validate_texts

_MAX_CACHED_GALLERIES = 4
# Tokenizers that know no limit report model_max_length as a huge sentinel (int(1e30)).
_NO_TOKENIZER_LIMIT = 10 ** 9
# Where train.py sets each truncation length, for the message of a length the encoder cannot take.
_LENGTH_FLAGS = {"max_post_length": "--max-post-length N", "max_prompt_length": "--model-config max_prompt_length=N"}
# Range of a fitted calibration temperature (the logits are cosines times the logit scale, 1/0.03 at init).
_MIN_TEMPERATURE, _MAX_TEMPERATURE = 0.05, 20.0


def _positive_int(value, name):
    """`value` as an int; ValueError naming `name` unless it is a whole number >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class GeolocationMixin:
    """Adds `geolocate`, `encode_posts`, `encode_places` and `fit_probability_temperature` to ContrastGeoModel."""

    # ------------------------------------------------------------------ tokenization
    def text_length_limit(self):
        """The most tokens the text encoder takes: its position embeddings (less those RoBERTa-style encoders keep
        below their first position, which is padding_idx + 1), or the tokenizer's `model_max_length` when that is
        smaller; None when neither says."""
        positions = getattr(self.config.text_config, "max_position_embeddings", None)
        # Stop at the position embeddings, near the start of the walk: this runs for every batch of posts.
        for name, module in self.text_model.named_modules():
            if name.endswith("position_embeddings") and isinstance(module, nn.Embedding):
                if module.padding_idx is not None:
                    positions = module.num_embeddings - module.padding_idx - 1
                break
        limits = [positions, getattr(self.tokenizer, "model_max_length", None)]
        limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < _NO_TOKENIZER_LIMIT]
        return min(limits) if limits else None

    def check_text_lengths(self):
        """ValueError when posts or prompts would be truncated to more tokens than the text encoder has positions
        for (torch would fail later, inside the encoder, with a size mismatch)."""
        self._checked_length("max_post_length", self.config.max_post_length)
        self._checked_length("max_prompt_length", self.config.max_prompt_length)

    def _checked_length(self, name, length):
        """`length` (the truncation length `name`), or ValueError when it exceeds `text_length_limit`."""
        limit = self.text_length_limit()
        if limit is not None and length > limit:
            flag = _LENGTH_FLAGS[name]
            raise ValueError(f"{name} {length} is more tokens than the text encoder takes ({limit}): set it to "
                             f"{limit} or less (train.py {flag})")
        return length

    def tokenize_posts(self, texts, max_length=None):
        """Model inputs of posts: the tokenizer's, plus `char_ngram_ids` / `char_ngram_weights` when the model has
        a character n-gram channel."""
        texts = list(texts)
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, return_tensors="pt",
            max_length=self._checked_length("max_post_length", max_length or self.config.max_post_length),
        )
        featurizer = self.char_ngram_featurizer
        if featurizer is not None:
            encoded.update(featurizer(texts))
        return encoded

    def prompts_for(self, names) -> list[str]:
        """Prompt texts for place names, place-major: place c, template t at index c * T + t."""
        return [template.format(name=name) for name in names for template in self.config.prompt_templates]

    def tokenize_places(self, places) -> dict:
        """Model inputs for a list of places: `place_input_ids`/`place_attention_mask` and/or `place_latlon`."""
        inputs = {}
        if self.config.uses_prompts:
            encoded = self.tokenizer(
                self.prompts_for([place["name"] for place in places]), padding=True, truncation=True,
                max_length=self._checked_length("max_prompt_length", self.config.max_prompt_length),
                return_tensors="pt",
            )
            inputs["place_input_ids"] = encoded["input_ids"]
            inputs["place_attention_mask"] = encoded["attention_mask"]
        if self.config.uses_coordinates:
            inputs["place_latlon"] = torch.tensor(
                [[place["latitude"], place["longitude"]] for place in places], dtype=torch.float32
            )
        return inputs

    # ------------------------------------------------------------------ encoding
    def _weights_version(self) -> tuple:
        # Parameter version counters move on every in-place update (optimizer steps, load_state_dict, merges).
        return tuple((id(parameter), parameter._version) for parameter in self.parameters()) + (
            str(self.device), str(self.dtype)
        )

    @torch.inference_mode()
    def encode_posts(self, texts, batch_size: int = 64, allow_blank: bool = False) -> torch.Tensor:
        """(N, D) L2-normalised post embeddings, batched, in input order (batches are formed by length).
        Blank posts raise a ValueError unless `allow_blank` (see `places.validate_texts`)."""
        texts = validate_texts(texts, allow_blank)
        batch_size = _positive_int(batch_size, "batch_size")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        embeddings = [None] * len(texts)
        for start in range(0, len(texts), batch_size):
            indices = order[start:start + batch_size]
            encoded = self.tokenize_posts([texts[i] for i in indices]).to(self.device)
            features = nn.functional.normalize(
                self.get_text_features(**encoded).float(), dim=-1
            )
            for row, index in enumerate(indices):
                embeddings[index] = features[row]
        return torch.stack(embeddings)

    @torch.inference_mode()
    def encode_places(self, places, batch_size: int = 256) -> torch.Tensor:
        """(C, D) L2-normalised place embeddings in input order (uncached; see `gallery_embeddings`)."""
        places = normalize_places(places)
        batch_size = _positive_int(batch_size, "batch_size")
        # Batches of names of similar length pad less (1.3-1.6x faster for GeoNames galleries).
        order = sorted(range(len(places)), key=lambda i: len(places[i]["name"]))
        chunks = []
        for start in range(0, len(places), batch_size):
            batch = [places[i] for i in order[start:start + batch_size]]
            inputs = {k: v.to(self.device) for k, v in self.tokenize_places(batch).items()}
            chunks.append(self.get_location_features(**inputs).float())
        sorted_embeddings = torch.cat(chunks)
        embeddings = torch.empty_like(sorted_embeddings)
        embeddings[torch.tensor(order, device=embeddings.device)] = sorted_embeddings
        return embeddings

    def gallery_embeddings(self, places, batch_size: int = 256) -> torch.Tensor | None:
        """Cached `encode_places`: a gallery is encoded once per set of weights (None for a classifier)."""
        if self.classifier_head is not None:
            if places_fingerprint(places) != places_fingerprint(self.resolve_places(None)):
                raise ValueError("a classifier model (location_mode='classifier') predicts only its trained places")
            return None
        key = (places_fingerprint(places), self._weights_version())
        cache = self._gallery_cache
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        was_training = self.training
        self.eval()
        try:
            embeddings = self.encode_places(places, batch_size=batch_size)
        finally:
            self.train(was_training)
        cache[key] = embeddings
        while len(cache) > _MAX_CACHED_GALLERIES:
            cache.popitem(last=False)
        return embeddings

    def resolve_places(self, places=None) -> list[dict]:
        """The gallery to predict over: `places`, or the label set saved with the model."""
        if places is None:
            if not self.config.places:
                raise ValueError(
                    "this model has no saved places: pass places=[{'name', 'latitude', 'longitude'}, ...], "
                    "'geonames' or 'geonames:CC'"
                )
            places = self.config.places
        return resolve_gallery(places)

    # ------------------------------------------------------------------ prediction
    def _uncalibrated_logits(self, texts, gallery, batch_size, allow_blank=False) -> torch.Tensor:
        if self.classifier_head is not None:
            chunks = []
            for start in range(0, len(texts), batch_size):
                encoded = self.tokenize_posts(texts[start:start + batch_size]).to(self.device)
                chunks.append(self.classifier_head(self.get_text_features(**encoded)).float())
            return torch.cat(chunks)
        post_embeds = self.encode_posts(texts, batch_size, allow_blank)
        return self.scaled_logit_scale().detach().float() * post_embeds @ gallery.t()

    def _probabilities(self, texts, gallery, batch_size, allow_blank=False, log_prior=None) -> torch.Tensor:
        logits = self._uncalibrated_logits(texts, gallery, batch_size, allow_blank)
        return self._calibrated(logits, log_prior).softmax(-1)

    def _calibrated(self, logits, log_prior=None) -> torch.Tensor:
        """Logits divided by the calibration temperature, plus the log place prior when there is one."""
        logits = logits / self.config.probability_temperature
        return logits if log_prior is None else logits + log_prior.to(logits.device)

    def place_log_prior(self, places=None, place_prior=None) -> torch.Tensor | None:
        """(C,) float32 log place prior over the gallery (normalised, raised to `config.place_prior_weight`), or None.

        `place_prior`: None uses `config.place_prior`; "population" turns the population prior on; False or "none"
        turns it off. A probability temperature is fitted without it: the held-out posts are balanced over places.
        """
        if place_prior is None:
            place_prior = self.config.place_prior
        if place_prior is False or place_prior == "none":
            place_prior = None
        if place_prior is not None and place_prior not in PLACE_PRIORS:
            raise ValueError(f"place_prior={place_prior!r} is not one of {list(PLACE_PRIORS)}, 'none' or False")
        if place_prior is None or self.config.place_prior_weight == 0:
            return None
        places = self.resolve_places(places)
        return torch.from_numpy(log_place_prior(places, place_prior, self.config.place_prior_weight)).float()

    @torch.inference_mode()
    def predict_logits(self, texts, places=None, batch_size: int = 64,
                       allow_blank: bool = False) -> tuple[torch.Tensor, list[dict]]:
        """(N, C) float32 logits of every place in the gallery before the calibration temperature, and the gallery.
        `predict_scores` is their softmax after dividing by `config.probability_temperature`. Blank posts raise a
        ValueError unless `allow_blank` (then they are scored from the special tokens alone)."""
        batch_size = _positive_int(batch_size, "batch_size")
        places = self.resolve_places(places)
        was_training = self.training
        self.eval()
        try:
            gallery = self.gallery_embeddings(places)
            logits = self._uncalibrated_logits(validate_texts(texts, allow_blank), gallery, batch_size, allow_blank)
        finally:
            self.train(was_training)
        return logits, places

    def predict_scores(self, texts, places=None, batch_size: int = 64, allow_blank: bool = False,
                       place_prior=None) -> tuple[torch.Tensor, list[dict]]:
        """(N, C) calibrated probabilities of every place in the gallery (with the place prior, see
        `place_log_prior`), and the gallery."""
        logits, places = self.predict_logits(texts, places, batch_size, allow_blank)
        return self._calibrated(logits, self.place_log_prior(places, place_prior)).softmax(-1), places

    @torch.inference_mode()
    def geolocate(self, texts, places=None, top_k: int = 5, batch_size: int = 64, rerank: bool | None = None,
                  rerank_top_k: int | None = None, allow_blank: bool = False, place_prior=None):
        """Where was each post written?

        Args:
            texts: a post or a list of posts (non-empty strings).
            places: None (the label set saved with the model), "geonames" (cities >= 15,000 people worldwide),
                "geonames:CC" (one country), or a list/table of places with name, latitude, longitude.
            top_k: places returned per post.
            batch_size: posts per forward pass.
            rerank: re-rank the top `rerank_top_k` contrastive candidates with the TLM matching head
                (default: on when `config.rerank_top_k > 0`).
            allow_blank: score empty / whitespace-only posts from the special tokens alone instead of raising
                (for evaluations that must keep every post of a fixed query set).
            place_prior: None (the model's `config.place_prior`), "population" (weigh each place by its population,
                see `place_prior.py`) or False / "none" (every place equally likely before the post is read).

        Returns:
            One list per post of `{"name", "latitude", "longitude", "score"}`, best first; scores are calibrated
            probabilities over the gallery (they sum to at most 1).
        """
        texts = validate_texts(texts, allow_blank)
        top_k, batch_size = _positive_int(top_k, "top_k"), _positive_int(batch_size, "batch_size")
        if rerank_top_k is not None:
            rerank_top_k = _positive_int(rerank_top_k, "rerank_top_k")
        places = self.resolve_places(places)
        log_prior = self.place_log_prior(places, place_prior)
        rerank_top_k = rerank_top_k or self.config.rerank_top_k or 10
        rerank = bool(self.config.rerank_top_k) if rerank is None else rerank
        was_training = self.training
        self.eval()
        try:
            gallery = self.gallery_embeddings(places)
            # Batches of posts of similar length pad less (1.2x faster on tweets); results go back in input order.
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            results = [None] * len(texts)
            for start in range(0, len(texts), batch_size):
                positions = order[start:start + batch_size]
                batch = [texts[i] for i in positions]
                if rerank and self.classifier_head is None:
                    scores, indices = self._reranked_top(batch, places, gallery, top_k, rerank_top_k, log_prior)
                else:
                    probabilities = self._probabilities(batch, gallery, batch_size, allow_blank, log_prior)
                    scores, indices = probabilities.topk(min(top_k, len(places)), dim=-1)
                for position, row_scores, row_indices in zip(positions, scores.tolist(), indices.tolist()):
                    results[position] = [
                        {"name": places[i]["name"], "latitude": places[i]["latitude"],
                         "longitude": places[i]["longitude"], "score": score}
                        for score, i in zip(row_scores, row_indices)
                    ]
        finally:
            self.train(was_training)
        return results

    def _reranked_top(self, texts, places, gallery, top_k, rerank_top_k, log_prior=None):
        """ALBEF-style: contrastive top-R, then the TLM head re-scores those R (probability mass preserved)."""
        encoded = self.tokenize_posts(texts).to(self.device)
        post_features, encoder_output = self._post_features(**encoded)
        token_states = encoder_output.last_hidden_state
        post_embeds = nn.functional.normalize(post_features.float(), dim=-1)
        scale = self.scaled_logit_scale().detach().float()
        probabilities = self._calibrated(scale * post_embeds @ gallery.t(), log_prior).softmax(-1)
        num_candidates = min(max(rerank_top_k, top_k), len(places))
        top_probabilities, top_indices = probabilities.topk(num_candidates, dim=-1)
        unique_indices, inverse = top_indices.unique(return_inverse=True)
        location_token_states = location_token_mask = None
        if self.config.uses_prompts and self.config.tlm_fusion == "cross_attention":
            subset = [places[i] for i in unique_indices.tolist()]
            inputs = {k: v.to(self.device) for k, v in self.tokenize_places(subset).items()}
            _, location_token_states, location_token_mask = self._location_features(**inputs, return_tokens=True)
        match = self.match_logits(
            post_embeds.to(self.dtype), inverse, gallery[unique_indices].to(self.dtype), token_states,
            encoded["attention_mask"], location_token_states, location_token_mask,
        ).float().softmax(-1)[..., 1]
        combined = top_probabilities * match
        combined = combined / combined.sum(-1, keepdim=True).clamp_min(1e-12) * top_probabilities.sum(-1, keepdim=True)
        scores, order = combined.topk(min(top_k, num_candidates), dim=-1)
        return scores, top_indices.gather(1, order)

    def fit_probability_temperature(self, texts, labels, places=None, batch_size: int = 64) -> float:
        """Fit the calibration temperature on held-out posts with known labels (indices into the gallery, or the
        places' names) by minimising the negative log-likelihood within [0.05, 20]; store it in
        `config.probability_temperature` and return it."""
        places = self.resolve_places(places)
        texts = validate_texts(texts)
        labels = _gallery_indices(labels, places)
        if labels.shape[0] != len(texts):
            raise ValueError(f"{len(texts)} posts but {labels.shape[0]} labels")
        raw_logits, _ = self.predict_logits(texts, places, batch_size)
        raw_logits = raw_logits.cpu().clone()  # a normal tensor: inference tensors cannot enter autograd
        with torch.enable_grad():
            log_temperature = torch.zeros((), requires_grad=True)
            # A line search, not a fixed step: with lr=0.1 steps the loss change fell under L-BFGS's tolerance
            # before the optimum on a flat NLL (runs whose logits differ by float noise fitted 3.668 and 3.678).
            optimizer = torch.optim.LBFGS([log_temperature], max_iter=200, line_search_fn="strong_wolfe")

            def closure():
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(raw_logits / log_temperature.exp(), labels)
                loss.backward()
                return loss

            optimizer.step(closure)
        # The NLL is unimodal in the temperature, so clamping the free optimum gives the optimum within the bounds.
        # Bounds matter when the logits carry no signal: the NLL is then flat and the free optimum runs off to
        # thousands, a value that noise in the weights moves around.
        temperature = min(max(float(log_temperature.detach().exp()), _MIN_TEMPERATURE), _MAX_TEMPERATURE)
        self.config.probability_temperature = temperature
        return temperature


def _gallery_indices(labels, places) -> torch.Tensor:
    """Labels (gallery indices or place names) as a LongTensor of indices; a label that is neither is named."""
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        raise ValueError(f"labels must be a list with one label per post, got {type(labels).__name__} {labels!r}")
    labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
    index_of_name, indices = {}, []
    for index, place in enumerate(places):
        index_of_name.setdefault(place["name"], index)
    for position, label in enumerate(labels):
        if isinstance(label, str):
            if label not in index_of_name:
                raise ValueError(f"label {position} ({label!r}) is not the name of a place of the gallery")
            indices.append(index_of_name[label])
        elif isinstance(label, numbers.Integral) and not isinstance(label, bool):
            if not 0 <= label < len(places):
                raise ValueError(f"label {position} ({label}) must index the {len(places)} places: [0, {len(places)})")
            indices.append(int(label))
        else:
            raise ValueError(f"label {position} must be a place's index or name, got {type(label).__name__} {label!r}")
    return torch.tensor(indices, dtype=torch.long)

