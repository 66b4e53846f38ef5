"""Configuration of ContrastGeo models (ContrastGeo: Li & Lim 2024; CSP location encoders: Mai et al. 2023)."""

import math
import numbers
from dataclasses import field

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .place_prior import PLACE_PRIORS, check_prior_weight
from .places import normalize_places

LOCATION_MODES = ("prompt", "coordinates", "hybrid", "classifier")
POOLING_MODES = ("mean", "cls")
TLM_FUSIONS = ("sum", "concat", "cross_attention")
FUSION_ENCODERS = ("mlp", "adapter", "transformer")
HARD_NEGATIVE_STRATEGIES = ("multinomial", "topk")
HYBRID_COMBINATIONS = ("sum", "gate")
LOCATION_ENCODER_KINDS = ("grid", "theory", "sphereC", "sphereC+", "sphereM", "sphereM+", "wrap")


# Whole-number fields and their smallest value; those in _OPTIONAL_SIZES may also be None.
_INTEGER_FIELDS = {
    "projection_dim": 1, "max_post_length": 1, "max_prompt_length": 1, "char_ngram_buckets": 0, "char_ngram_dim": 1,
    "location_num_scales": 1, "location_hidden_size": 1, "location_num_hidden_layers": 0, "num_location_tokens": 1,
    "num_hard_negatives": 0, "csp_num_random_locations": 0, "csp_content_dim": 1, "location_prior_num_classes": 1,
    "rerank_top_k": 0,
}
_OPTIONAL_SIZES = ("projection_dim", "csp_content_dim", "location_prior_num_classes")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}")


def _checked_integer(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


class ContrastGeoConfig(PreTrainedConfig):
    r"""
    Configuration of a [`ContrastGeoModel`]: a post (text) encoder and a location encoder aligned by contrastive
    learning, plus a matching head that scores fused (post, place) pairs.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the text encoder (any Hugging Face encoder; BERT-style by default). The model is built from this
            config; pretrained weights are loaded by `ContrastGeoModel.from_text_encoder` or `from_pretrained`.
        text_encoder_name_or_path (`str`, *optional*):
            Where the text encoder's pretrained weights and tokenizer came from (kept for provenance).
        pooling (`str`, defaults to `"mean"`): `"mean"` (mask-aware mean of token states) or `"cls"` (the first
            token's state; refused for a causal encoder such as GPT-2, whose first token sees nothing after it).
        projection_dim (`int` or `None`, defaults to 256):
            Size of the shared post/location embedding space. `None` means no projection: embeddings are the pooled
            text-encoder states (then the coordinate encoder outputs the encoder's hidden size).
        location_mode (`str`, defaults to `"prompt"`):
            `"prompt"`: place names in prompt templates through the text encoder (ContrastGeo);
            `"coordinates"`: a CSP coordinate encoder of (latitude, longitude);
            `"hybrid"`: both, combined by `hybrid_combination` (`"sum"` or a learned `"gate"`);
            `"classifier"`: no location encoder, a linear head over the saved label set (the supervised baseline,
            as transTagger); it predicts only its trained places.
        prompt_templates (`list[str]`): templates with a `{name}` slot; several are averaged (prompt ensembling).
        share_text_encoder (`bool`, defaults to `True`): encode prompts with the post encoder (else a second copy).
        max_post_length / max_prompt_length (`int`): tokenizer truncation lengths.
        char_ngram_buckets (`int`, defaults to 0): if > 0, the post encoder adds a hashed TF-IDF bag of character
            n-grams (that many hash buckets) to the sentence embedding (see `char_ngrams.py`); 0 turns it off.
        char_ngram_range (`list[int]`, defaults to `[1, 5]`): smallest and largest n-gram length (within words).
        char_ngram_dim (`int`, defaults to 64): width of the n-gram table (a linear map takes it to the embedding).
        location_encoder_kind (`str`, defaults to `"sphereM"`): one of grid, theory, sphereC, sphereC+, sphereM,
            sphereM+, wrap (see `location_encoding.py`).
        location_num_scales, location_min_radius, location_max_radius, location_hidden_size,
        location_num_hidden_layers, location_dropout: constants of the coordinate encoder.
        logit_scale_init_value (`float`, defaults to 1/0.03): initial inverse temperature of TLC.
        learnable_logit_scale (`bool`, defaults to `True`).
        max_logit_scale (`float`, defaults to 100): the logit scale is clamped to this, as in CLIP.
        tlm_fusion (`str`, defaults to `"cross_attention"`): `"sum"`, `"concat"` or `"cross_attention"`.
        fusion_encoder (`str`, defaults to `"transformer"`): `"mlp"`, `"adapter"` or `"transformer"` (one layer).
        num_location_tokens (`int`, defaults to 2): tokens made from a location embedding for cross-attention.
        num_hard_negatives (`int`, defaults to 6) and hard_negative_strategy (`"multinomial"` or `"topk"`).
        tlc_weight, tlm_weight (`float`): loss weights (total = tlc_weight * TLC + tlm_weight * TLM).
        label_smoothing (`float`): label smoothing of TLC.
        csp_in_batch_weight, csp_random_location_weight, csp_dropout_view_weight (`float`): CSP loss terms B, L, D.
        csp_in_batch_temperature, csp_random_location_temperature, csp_dropout_view_temperature (`float`).
        csp_num_random_locations (`int`): random locations (uniform on the sphere) per CSP step.
        csp_content_dim (`int`, *optional*): size of precomputed content features (e.g. image features) used in CSP
            pre-training; a trainable projection maps them to the embedding space.
        location_prior_num_classes (`int`, *optional*): builds a class head on the coordinate encoder (CSP's
            location prior, trained with the presence/absence loss).
        location_prior_class_names (`list[str]`, *optional*): names of those classes.
        location_prior_positive_weight (`float`, *optional*): weight of the observed presence in the
            presence/absence loss; None uses the number of classes (Mac Aodha et al. 2019).
        places (`list[dict]`): the trained label set, each `{"name", "latitude", "longitude"}`; `geolocate` uses it
            when no gallery is given. Label `i` is `places[i]`.
        probability_temperature (`float`, defaults to 1.0): calibration temperature applied to the logits
            before the softmax (fitted on held-out posts by `fit_probability_temperature`).
        rerank_top_k (`int`, defaults to 0): if > 0, `geolocate` re-ranks the contrastive top candidates with the
            matching head (ALBEF-style).
        place_prior (`str`, *optional*): `"population"` multiplies the calibrated probabilities by each place's
            population (GeoNames) raised to `place_prior_weight` (see `place_prior.py`); None (the default) leaves them
            as the few-shot model gives them, i.e. every place equally likely before the post is read.
        place_prior_weight (`float`, defaults to 1.0): exponent of the prior (1 is Bayes' rule; 0 turns it off).
    """

    model_type = "contrastgeo"
    sub_configs_defaults = {"text_config": SubConfigSpec(AutoConfig, model_type="bert")}

    text_config: dict | PreTrainedConfig | None = None
    text_encoder_name_or_path: str | None = None
    pooling: str = "mean"
    projection_dim: int | None = 256
    location_mode: str = "prompt"
    prompt_templates: list[str] = field(default_factory=lambda: ["A post from {name}."])
    share_text_encoder: bool = True
    max_post_length: int = 128
    max_prompt_length: int = 32
    char_ngram_buckets: int = 0
    char_ngram_range: list[int] = field(default_factory=lambda: [1, 5])
    char_ngram_dim: int = 64
    location_encoder_kind: str = "sphereM"
    location_num_scales: int = 32
    location_min_radius: float | None = None
    location_max_radius: float = 360.0
    location_hidden_size: int = 512
    location_num_hidden_layers: int = 2
    location_dropout: float = 0.1
    hybrid_combination: str = "sum"
    logit_scale_init_value: float = 1 / 0.03
    learnable_logit_scale: bool = True
    max_logit_scale: float = 100.0
    tlm_fusion: str = "cross_attention"
    fusion_encoder: str = "transformer"
    num_location_tokens: int = 2
    num_hard_negatives: int = 6
    hard_negative_strategy: str = "multinomial"
    tlc_weight: float = 1.0
    tlm_weight: float = 1.0
    label_smoothing: float = 0.0
    csp_in_batch_weight: float = 1.0
    csp_random_location_weight: float = 1.0
    csp_dropout_view_weight: float = 1.0
    csp_in_batch_temperature: float = 0.1
    csp_random_location_temperature: float = 0.1
    csp_dropout_view_temperature: float = 0.1
    csp_num_random_locations: int = 64
    csp_content_dim: int | None = None
    location_prior_num_classes: int | None = None
    location_prior_class_names: list[str] | None = None
    location_prior_positive_weight: float | None = None
    places: list[dict] = field(default_factory=list)
    probability_temperature: float = 1.0
    rerank_top_k: int = 0
    place_prior: str | None = None
    place_prior_weight: float = 1.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        _check_choice("pooling", self.pooling, POOLING_MODES)
        _check_choice("location_mode", self.location_mode, LOCATION_MODES)
        _check_choice("tlm_fusion", self.tlm_fusion, TLM_FUSIONS)
        _check_choice("fusion_encoder", self.fusion_encoder, FUSION_ENCODERS)
        _check_choice("hard_negative_strategy", self.hard_negative_strategy, HARD_NEGATIVE_STRATEGIES)
        _check_choice("hybrid_combination", self.hybrid_combination, HYBRID_COMBINATIONS)
        _check_choice("location_encoder_kind", self.location_encoder_kind, LOCATION_ENCODER_KINDS)
        if isinstance(self.prompt_templates, str):
            self.prompt_templates = [self.prompt_templates]
        self.prompt_templates = list(self.prompt_templates)
        if not self.prompt_templates:
            raise ValueError("prompt_templates is empty: give at least one template with a {name} slot")
        for template in self.prompt_templates:
            if "{name}" not in template:
                raise ValueError(f"prompt template {template!r} has no {{name}} slot")
            try:
                template.format(name="")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"prompt template {template!r} is not a format string with a {{name}} slot alone "
                                 f"({type(error).__name__}: {error}); write a literal brace as {{{{ or }}}}") from None
        for name, minimum in _INTEGER_FIELDS.items():
            value = getattr(self, name)
            if not (value is None and name in _OPTIONAL_SIZES):
                setattr(self, name, _checked_integer(name, value, minimum))
        if not (self.logit_scale_init_value > 0 and math.isfinite(self.logit_scale_init_value)):
            raise ValueError(f"logit_scale_init_value must be a positive number, got {self.logit_scale_init_value}")
        if not (self.max_logit_scale > 0 and math.isfinite(self.max_logit_scale)):
            raise ValueError(f"max_logit_scale must be a positive number, got {self.max_logit_scale}")
        if not (self.initializer_range >= 0 and math.isfinite(self.initializer_range)):
            raise ValueError(f"initializer_range must be a number >= 0, got {self.initializer_range}")
        if not (self.probability_temperature > 0 and math.isfinite(self.probability_temperature)):
            raise ValueError(f"probability_temperature must be positive, got {self.probability_temperature}")
        self.char_ngram_range = [int(n) for n in self.char_ngram_range]
        if len(self.char_ngram_range) != 2 or not 1 <= self.char_ngram_range[0] <= self.char_ngram_range[1]:
            raise ValueError(f"char_ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n, "
                             f"got {self.char_ngram_range}")
        if self.char_ngram_buckets == 1:
            raise ValueError(f"char_ngram_buckets must be 0 (off) or at least 2, got {self.char_ngram_buckets}")
        names, num_classes = self.location_prior_class_names, self.location_prior_num_classes
        if names is not None and num_classes is not None and len(names) != num_classes:
            raise ValueError(f"location_prior_class_names has {len(names)} names for "
                             f"location_prior_num_classes={num_classes}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.place_prior is not None:
            _check_choice("place_prior", self.place_prior, PLACE_PRIORS)
        self.place_prior_weight = check_prior_weight(self.place_prior_weight)
        # Validated here, so that a bad label set fails when the config is built or loaded, naming the place.
        has_places = self.places is not None and len(self.places) > 0
        places = normalize_places(self.places, warn_shared_names=False) if has_places else []
        self.places = [dict(place) for place in places]
        if self.location_mode == "classifier" and not self.places:
            raise ValueError("location_mode='classifier' needs the label set: pass places=[...]")

    @property
    def embed_dim(self) -> int:
        """Size of `post_embeds` and `location_embeds`."""
        return self.projection_dim if self.projection_dim is not None else self.text_config.hidden_size

    @property
    def uses_prompts(self) -> bool:
        return self.location_mode in ("prompt", "hybrid")

    @property
    def uses_coordinates(self) -> bool:
        return self.location_mode in ("coordinates", "hybrid")


ContrastGeoConfig.register_for_auto_class()

__all__ = ["ContrastGeoConfig"]
