"""Building the model of a run: which parts train, their learning rates, and initialisation from a CSP model."""

import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from modeling_contrastgeo import ContrastGeoConfig, ContrastGeoModel
from modeling_contrastgeo.location_encoding import DEFAULT_MIN_RADIUS
from modeling_contrastgeo.place_prior import place_populations
from modeling_contrastgeo.places import normalize_places

from .config import resolve_text_encoder
from .lora import TEXT_ENCODER_ATTRIBUTES

logger = logging.getLogger(__name__)
# Training posts are spread evenly over places (few-shot) when the most frequent place has at most this many times
# the posts of the least frequent.
MAX_BALANCED_RATIO = 2
# Fields that fix the shapes and meaning of a coordinate encoder's weights.
COORDINATE_ENCODER_FIELDS = ("location_encoder_kind", "location_num_scales", "location_min_radius",
                             "location_max_radius", "location_hidden_size", "location_num_hidden_layers")


def build_model(config: dict, places=None, class_names=None) -> ContrastGeoModel:
    """A ContrastGeo model around the run's text encoder, with the label set (`places`) or the location-prior
    classes (`class_names`), initialised from `config["init_location_encoder"]` when given."""
    model_kwargs = dict(config["model_config"])
    if class_names is not None:
        model_kwargs["location_prior_num_classes"] = len(class_names)
        model_kwargs["location_prior_class_names"] = list(class_names)
    if places and model_kwargs.get("place_prior"):
        # Saved with the label set, so that the prior needs no gazetteer lookup when the model is used.
        places = [dict(place, population=float(population))
                  for place, population in zip(places, place_populations(normalize_places(places)))]
    model = ContrastGeoModel.from_text_encoder(resolve_text_encoder(config["model_name_or_path"]), places=places,
                                               **model_kwargs)
    model.check_text_lengths()  # before training, not at the first batch
    if places:
        model.set_places(places)
    if config["init_location_encoder"]:
        copy_location_encoder(model, config["init_location_encoder"])
    return model


def resolve_place_prior(config: dict, place_prior_given: bool, train_labels) -> None:
    """Turn off the default place prior (in `config["model_config"]`) when the training posts are not spread evenly
    over their places: the prior corrects a model that saw as many posts of a village as of a capital (the few-shot
    draw); a model trained on posts that follow their own place distribution has learned it, and the prior would
    count it twice. A prior the user asked for (flag, --model-config or config file) is kept."""
    model_config = config["model_config"]
    if not model_config.get("place_prior") or place_prior_given or config["shots"]:
        return
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64))
    counts = counts[counts > 0]
    if counts.max() <= MAX_BALANCED_RATIO * counts.min():
        return
    logger.warning("the training posts are not spread evenly over their places (%d to %d per place), so the model "
                   "learns how often each place posts and the default place prior (%s) would count it twice: it is "
                   "off. Pass --place-prior %s to keep it (e.g. when the posts to geolocate follow population rather "
                   "than this file)", counts.min(), counts.max(), model_config["place_prior"],
                   model_config["place_prior"])
    model_config["place_prior"] = None


def _coordinate_encoder_settings(config) -> dict:
    """The `COORDINATE_ENCODER_FIELDS` of a config as the encoder uses them: an unset minimum radius is its kind's
    default, and "wrap" has no scales or radii."""
    settings = {name: getattr(config, name) for name in COORDINATE_ENCODER_FIELDS}
    kind = settings["location_encoder_kind"]
    if kind == "wrap":
        return {name: value for name, value in settings.items()
                if name not in ("location_num_scales", "location_min_radius", "location_max_radius")}
    if settings["location_min_radius"] is None:
        settings["location_min_radius"] = DEFAULT_MIN_RADIUS[kind]
    return settings


def copy_location_encoder(model: ContrastGeoModel, source_dir) -> None:
    """Load the `location_encoder.*` weights of a saved model (e.g. a CSP run) into `model`.

    Raises ValueError when `model` has no coordinate encoder, when the folder holds no saved ContrastGeo model or one
    without a coordinate encoder, when the saved model's coordinate-encoder config or embedding size differs (naming
    each field), or when the folder holds no such weights.
    """
    source_dir = Path(source_dir)
    if model.location_encoder is None:
        raise ValueError(f"--init-location-encoder needs a coordinate encoder: location_mode 'coordinates' or "
                         f"'hybrid' (this model has location_mode={model.config.location_mode!r})")
    if not source_dir.is_dir():
        raise ValueError(f"--init-location-encoder {source_dir}: no such folder")
    if not (source_dir / "config.json").is_file():
        raise ValueError(f"--init-location-encoder {source_dir}: no config.json (expected a saved ContrastGeo model)")
    model_type = json.loads((source_dir / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != ContrastGeoConfig.model_type:
        raise ValueError(f"--init-location-encoder {source_dir}: a {model_type!r} model, not a saved ContrastGeo model "
                         "(give the output folder of a csp, location-prior or coordinate contrastgeo run)")
    source_config = ContrastGeoConfig.from_pretrained(source_dir)
    if not source_config.uses_coordinates:
        raise ValueError(f"--init-location-encoder {source_dir}: that model has no coordinate encoder to copy "
                         f"(location_mode={source_config.location_mode!r}); give a csp or location-prior run, or a "
                         "run with location_mode 'coordinates' or 'hybrid'")
    source_settings, settings = _coordinate_encoder_settings(source_config), _coordinate_encoder_settings(model.config)
    mismatches = [f"{name}: saved {source_settings[name]!r}, this run {settings[name]!r}"
                  for name in settings if source_settings[name] != settings[name]]
    if source_config.embed_dim != model.config.embed_dim:
        mismatches.append(f"embedding size (projection_dim or encoder hidden size): saved {source_config.embed_dim}, "
                          f"this run {model.config.embed_dim}")
    if mismatches:
        raise ValueError(f"--init-location-encoder {source_dir}: its coordinate encoder does not match this run's; "
                         "set the same values (e.g. --model-config KEY=VALUE): " + "; ".join(mismatches))
    prefix = "location_encoder."
    state = {}
    for path in sorted(source_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                if key.startswith(prefix):
                    state[key[len(prefix):]] = handle.get_tensor(key)
    if not state:
        raise ValueError(f"--init-location-encoder {source_dir}: no location_encoder.* weights in its .safetensors")
    try:
        model.location_encoder.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"--init-location-encoder {source_dir}: weights do not fit: {error}") from None


def trainable_parts(model: ContrastGeoModel, run_config: dict) -> list[str]:
    """Names of the model attributes a run trains: those of its objective, less the character n-gram channel when
    its learning rate is 0. Everything else is frozen: besides saving optimizer memory, DistributedDataParallel
    requires every trainable parameter to receive a gradient."""
    objective, config = run_config["objective"], model.config
    if objective == "csp":
        parts = ["location_encoder", "content_projection"]
    elif objective == "location-prior":
        parts = ["location_encoder", "location_prior_head"]
    elif objective == "classifier":
        parts = ["text_model", "text_projection", "char_ngram_encoder", "classifier_head"]
    else:
        parts = ["text_model", "text_projection", "char_ngram_encoder", "location_text_model", "location_gate"]
        if config.uses_coordinates:
            parts.append("location_encoder")
        if config.learnable_logit_scale:
            parts.append("logit_scale")
        if config.tlm_weight > 0 and config.num_hard_negatives > 0:
            parts.append("matching_head")
    if run_config["char_ngram_learning_rate"] == 0:
        parts = [part for part in parts if part != "char_ngram_encoder"]
    return [part for part in parts if getattr(model, part, None) is not None]


def set_trainable(model: ContrastGeoModel, parts) -> None:
    """requires_grad on the parameters of `parts`, off everywhere else."""
    model.requires_grad_(False)
    for part in parts:
        getattr(model, part).requires_grad_(True)


def enable_activation_checkpointing(model: ContrastGeoModel) -> int:
    """Recompute the text encoder's layer activations in the backward pass instead of storing them (less memory, more
    compute; the gradients are the same). Returns how many modules checkpoint; ValueError when the encoder has none.
    """
    # transformers' own refusal names ContrastGeoModel, not the encoder that lacks the layers, so check first.
    checkpointing = sum(hasattr(module, "gradient_checkpointing") for module in model.modules())
    if not checkpointing:
        raise ValueError(f"--gradient-checkpointing: the text encoder ({type(model.text_model).__name__}) has no "
                         "layer that supports activation checkpointing; train without the flag")
    # The reentrant variant needs inputs that require grad, which LoRA's frozen embeddings do not give.
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x, where the older name warns
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return checkpointing


def optimizer_parameter_groups(model: ContrastGeoModel, config: dict) -> list[dict]:
    """AdamW groups: text encoder(s) at the encoder (or LoRA) learning rate, the character n-gram channel at its own
    rate (the head rate when that is None), the rest at the head learning rate; no weight decay on biases, norms and
    the logit scale (parameters with fewer than 2 dimensions)."""
    rates = {
        "encoder": config["lora_learning_rate"] if config["lora"] else config["learning_rate"],
        "char_ngram": config["head_learning_rate"] if config["char_ngram_learning_rate"] is None
        else config["char_ngram_learning_rate"],
        "head": config["head_learning_rate"],
    }
    encoder_prefixes = tuple(f"{name}." for name in TEXT_ENCODER_ATTRIBUTES)
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith(encoder_prefixes):
            part = "encoder"
        else:
            part = "char_ngram" if name.startswith("char_ngram_encoder.") else "head"
        decay = parameter.ndim >= 2
        key = (part, decay)
        if key not in groups:
            groups[key] = {
                "params": [], "name": f"{part}{'' if decay else '_no_decay'}", "lr": rates[part],
                "weight_decay": config["weight_decay"] if decay else 0.0,
            }
        groups[key]["params"].append(parameter)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen")
    return [groups[key] for key in sorted(groups)]


@torch.no_grad()
def encode_texts(accelerator, model: ContrastGeoModel, texts, batch_size: int) -> torch.Tensor:
    """(N, D) frozen content embeddings of `texts` (L2-normalised post embeddings), each process encoding a share."""
    model.to(accelerator.device)
    indices = list(range(len(texts)))
    with accelerator.split_between_processes(indices, apply_padding=True) as shard:
        local = model.encode_posts([texts[i] for i in shard], batch_size=batch_size).clone()
    return accelerator.gather(local)[: len(texts)].cpu()
