"""Everything a run needs before `accelerator.prepare`: data, model, optimizer, schedule, step and evaluation."""

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from modeling_contrastgeo.char_ngrams import CROSS_VALIDATED

from .batches import PostCollator, TensorRows, index_dataloader, train_dataloader
from .config import GEOLOCATION_OBJECTIVES
from .data import load_csp_data, load_geolocation_data, load_location_prior_data
from .evaluation import evaluate_csp, evaluate_geolocation, evaluate_location_prior
from .lora import apply_lora
from .modeling import (build_model, enable_activation_checkpointing, encode_texts, optimizer_parameter_groups,
                       resolve_place_prior, set_trainable, trainable_parts)
from .objectives import ClassifierStep, ContrastGeoStep, CSPStep, LocationPriorStep, TLMCollapseMonitor

logger = logging.getLogger(__name__)
# Calibration needs one forward pass over its posts; a temperature is one parameter, a few thousand posts fix it.
MAX_CALIBRATION_POSTS = 4096


@dataclass
class TrainingRun:
    """The unprepared pieces of a run and its schedule (optimizer steps)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    train_dataloader: torch.utils.data.DataLoader
    eval_dataloader: torch.utils.data.DataLoader | None
    step: Callable
    evaluate: Callable
    calibrate: Callable | None
    finish_model: Callable | None  # after training, before calibration: e.g. the n-gram channel's late start
    total_steps: int
    num_epochs: int
    steps_per_epoch: int
    data_description: dict
    tlm_monitor: TLMCollapseMonitor


def steps_per_epoch(num_rows: int, batch_size: int, num_processes: int, accumulation: int) -> int:
    """Optimizer steps per epoch once Accelerate has sharded the batches over the processes."""
    batches_per_process = math.ceil(math.ceil(num_rows / batch_size) / num_processes)
    return math.ceil(batches_per_process / accumulation)


def training_schedule(config: dict, num_rows: int, num_processes: int) -> tuple[int, int, int]:
    """(total optimizer steps, epochs, steps per epoch): `num_train_epochs` epochs, raised to `min_train_steps`
    (tiny few-shot support sets), or exactly `max_train_steps` when given."""
    if num_rows == 0:
        raise ValueError("no training rows")
    per_epoch = steps_per_epoch(num_rows, config["batch_size"], num_processes, config["gradient_accumulation_steps"])
    total = config["max_train_steps"] or max(config["min_train_steps"], config["num_train_epochs"] * per_epoch)
    return total, math.ceil(total / per_epoch), per_epoch


def warmup_schedule(optimizer, name: str, warmup_steps: int, total_steps: int):
    """LambdaLR with linear warm-up then linear decay to 0, cosine decay, or a constant (transformers' schedules)."""

    def factor(step):
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        if name == "constant_with_warmup":
            return 1.0
        remaining = max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
        if name == "linear":
            return remaining
        return 0.5 * (1.0 + math.cos(math.pi * (1.0 - remaining)))

    if name not in ("linear", "cosine", "constant_with_warmup"):
        raise ValueError(f"unknown lr_scheduler {name!r}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _float_tensor(array):
    return torch.as_tensor(array, dtype=torch.float32)


def _geolocation_pieces(config, args, accelerator):
    data = load_geolocation_data(args)
    resolve_place_prior(config, args.place_prior_given, data.train["label"])
    model = build_model(config, places=data.places)
    train_rows = data.train
    start_char_ngram_channel = _char_ngram_start(config, model, train_rows)
    collate = PostCollator(model.tokenize_posts)
    if config["objective"] == "classifier":
        step = ClassifierStep()
    else:
        step = ContrastGeoStep(accelerator, model, data.places, config["max_candidates"], config["seed"])
    evaluation = data.eval

    def evaluate(accelerator, model, eval_dataloader):
        return evaluate_geolocation(accelerator, model, eval_dataloader, evaluation, data.places,
                                    config["eval_batch_size"])

    calibration_posts = {"heldout": data.heldout, "support": train_rows, "none": None}[config["calibration"]]
    if config["calibration"] == "heldout" and calibration_posts is None:
        logger.info("--calibration heldout: no pool post is left outside the training posts (use --shots K to "
                    "hold some out); the probability temperature stays %s", model.config.probability_temperature)

    def calibrate(unwrapped_model):
        return fit_temperature(unwrapped_model, calibration_posts, config["seed"], config["eval_batch_size"])

    calibrate_or_none = None if calibration_posts is None else calibrate
    num_eval = 0 if evaluation is None else len(evaluation["text"])
    return (model, train_rows, collate, step, evaluate, calibrate_or_none, start_char_ngram_channel, num_eval,
            data.description)


def _char_ngram_start(config, model, train_rows):
    """Fit the n-gram channel's IDF and start it (see defaults.py): now, or through the returned callable, which
    starts it on the trained model (after training, before calibration); None when nothing is left to do."""
    if model.char_ngram_encoder is None:
        return None
    # The IDF comes from the posts the model trains on, as a TF-IDF vectorizer's from its training texts.
    model.fit_char_ngram_idf(train_rows["text"])
    start = config["char_ngram_init"]
    if start == "zeros":
        return None
    texts, labels = train_rows["text"], train_rows["label"]
    scale = config["char_ngram_start_scale"]
    if scale == CROSS_VALIDATED:
        # On the encoder before training: once trained, it has fitted these very posts, and no held-out fold is left.
        scale = model.cross_validated_char_ngram_scale(texts, labels, start=start)
        logger.info("character n-gram channel: cross-validated scale %g", scale)

    def start_channel(unwrapped_model):
        used = unwrapped_model.init_char_ngram_from_labels(texts, labels, start=start, scale=scale)
        logger.info("character n-gram channel started from %s class weights at scale %g, %s", start, used,
                    config["char_ngram_start_at"])

    if config["char_ngram_start_at"] == "after-training":
        return start_channel
    start_channel(model)
    return None


def fit_temperature(model, posts, seed, batch_size, max_posts=MAX_CALIBRATION_POSTS):
    """Fit the model's probability temperature on `posts` (text, label; at most `max_posts`, drawn with `seed`).

    Every process fits on the same posts, so they all end with the same temperature."""
    positions = np.arange(len(posts))
    if len(positions) > max_posts:
        positions = np.sort(np.random.default_rng(seed).choice(positions, size=max_posts, replace=False))
    subset = posts.select(positions.tolist())
    return model.fit_probability_temperature(subset["text"], subset["label"], batch_size=batch_size)


def _csp_pieces(config, args, accelerator):
    data = load_csp_data(args)
    model = build_model(config)
    content = encode_texts(accelerator, model, data.train_texts, config["eval_batch_size"])
    train_rows = TensorRows(latlon=_float_tensor(data.train_latlon), content_embeds=content)
    num_eval, eval_latlon, eval_content = 0, None, None
    if data.eval_texts is not None:
        eval_latlon = _float_tensor(data.eval_latlon)
        eval_content = encode_texts(accelerator, model, data.eval_texts, config["eval_batch_size"])
        num_eval = len(data.eval_texts)

    def evaluate(accelerator, model, eval_dataloader):
        return evaluate_csp(accelerator, model, eval_dataloader, eval_latlon, eval_content)

    return model, train_rows, None, CSPStep(), evaluate, None, None, num_eval, data.description


def _location_prior_pieces(config, args, accelerator):
    data = load_location_prior_data(args)
    model = build_model(config, class_names=data.class_names)
    train_rows = TensorRows(latlon=_float_tensor(data.train_latlon),
                            labels=torch.as_tensor(data.train_labels, dtype=torch.long))
    num_eval = 0 if data.eval_labels is None else len(data.eval_labels)
    eval_latlon = None if data.eval_latlon is None else _float_tensor(data.eval_latlon)

    def evaluate(accelerator, model, eval_dataloader):
        return evaluate_location_prior(accelerator, model, eval_dataloader, eval_latlon, data.eval_labels)

    return model, train_rows, None, LocationPriorStep(), evaluate, None, None, num_eval, data.description


def build_run(config: dict, args, accelerator) -> TrainingRun:
    """Load the data, build the model (trainable parts, LoRA), the DataLoaders, optimizer and LR schedule."""
    objective = config["objective"]
    if objective in GEOLOCATION_OBJECTIVES:
        pieces = _geolocation_pieces(config, args, accelerator)
    elif objective == "csp":
        pieces = _csp_pieces(config, args, accelerator)
    else:
        pieces = _location_prior_pieces(config, args, accelerator)
    model, train_rows, collate, step, evaluate, calibrate, finish_model, num_eval, description = pieces
    if args.eval_steps and not num_eval:
        raise ValueError(f"--eval-steps {args.eval_steps} evaluates during training, but this run has no evaluation "
                         "data (give --eval-file, a task with an evaluation split, or for csp and location-prior "
                         "--eval-fraction)")
    set_trainable(model, trainable_parts(model, config))
    if args.gradient_checkpointing:
        checkpointing = enable_activation_checkpointing(model)
        logger.info("activation checkpointing on in %d modules", checkpointing)
    if config["lora"]:
        apply_lora(model, config["lora_rank"], config["lora_alpha"], config["lora_dropout"],
                   config["lora_target_modules"])
    optimizer = torch.optim.AdamW(optimizer_parameter_groups(model, config))
    num_processes = accelerator.num_processes
    total_steps, num_epochs, per_epoch = training_schedule(config, len(train_rows), num_processes)
    warmup_steps = math.ceil(config["warmup_ratio"] * total_steps)
    # Accelerate steps a prepared scheduler once per process per optimizer step.
    lr_scheduler = warmup_schedule(optimizer, config["lr_scheduler"], warmup_steps * num_processes,
                                   total_steps * num_processes)
    return TrainingRun(
        model=model, optimizer=optimizer, lr_scheduler=lr_scheduler,
        train_dataloader=train_dataloader(train_rows, config["batch_size"], config["seed"], collate),
        eval_dataloader=index_dataloader(num_eval, config["eval_batch_size"]) if num_eval else None,
        step=step, evaluate=evaluate, calibrate=calibrate, finish_model=finish_model, total_steps=total_steps,
        num_epochs=num_epochs,
        steps_per_epoch=per_epoch, data_description=description, tlm_monitor=TLMCollapseMonitor(warmup_steps),
    )
