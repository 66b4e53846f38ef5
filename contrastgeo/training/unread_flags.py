"""Flags a run would not read, refused by name: a setting given for another objective, another location mode or a
disabled part (LoRA, the character n-gram channel, a --shots draw) is never silently ignored.

Every flag has a default that applies to every run, so only what the user asked for can be checked: each flag given
on the command line, and each config-file value that differs from the run's default (a config file may be a whole
record of a run, e.g. the hyper-parameters of a training_config.json).
"""

from .defaults import MODEL_DEFAULTS, OBJECTIVE_DEFAULTS, RUN_DEFAULTS, TASK_SPLITS

GEOLOCATION_OBJECTIVES = ("contrastgeo", "classifier")


def requested_settings(cli, file_values, values, default_lora_targets) -> set:
    """The flag dests and model_config fields the user asked for: every one on the command line, and those of the
    config file whose value differs from this run's default (its entries at their defaults change nothing, read or
    not). `default_lora_targets(model_name_or_path)` gives the LoRA targets a run defaults to."""
    objective = values["objective"]
    defaults = {**RUN_DEFAULTS, **OBJECTIVE_DEFAULTS[objective], **MODEL_DEFAULTS[objective]}
    if "lora_target_modules" in file_values and "lora_target_modules" not in cli:
        defaults["lora_target_modules"] = default_lora_targets(values["model_name_or_path"])
    requested = {key for key in cli if key not in ("config", "model_config")} | set(cli.get("model_config", {}))
    from_file = {**{key: value for key, value in file_values.items() if key not in ("config", "model_config")},
                 **file_values.get("model_config", {})}
    requested.update(key for key, value in from_file.items() if _as_lists(value) != _as_lists(defaults.get(key)))
    return requested


def _as_lists(value):
    """`value` with its tuples as lists, so that a YAML list equals the tuple default it spells (16.0 == 16 as is)."""
    if isinstance(value, (list, tuple)):
        return [_as_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_lists(item) for key, item in value.items()}
    return value


def _evaluation_source(args):
    """What a run evaluates on besides a held-out share of its training rows: "--eval-file FILE", "split NAME of
    task TASK", or None."""
    if args.eval_file is not None:
        return f"--eval-file {args.eval_file}"
    eval_split = args.eval_split or TASK_SPLITS[args.objective][1]
    if args.task is not None and eval_split is not None:
        return f"split {eval_split!r} of task {args.task}"
    return None


def _unread_flag_reasons(args):
    """{flag dest: why this run does not read it} for the flags that only some runs read. Their defaults apply to
    every run, so only a flag given explicitly (`refuse_unread_flags`) can be told from one left at its default."""
    objective, model_config = args.objective, args.model_config
    reasons = {}
    frozen_encoder = f"{objective} keeps the text encoder frozen"
    evaluation_source = _evaluation_source(args)
    if objective in GEOLOCATION_OBJECTIVES:
        reasons["eval_fraction"] = (f"it holds out part of a csp or location-prior training set; {objective} "
                                    "evaluates on --eval-file or the task's evaluation split")
    elif evaluation_source is not None:
        reasons["eval_fraction"] = (f"it holds out part of the training rows when there is no evaluation data, and "
                                    f"this run evaluates on {evaluation_source}")
    if objective != "contrastgeo":
        reasons["max_candidates"] = f"it bounds the candidate places of a contrastgeo step; {objective} has none"
        for name in ("tlm_fusion", "fusion_encoder", "num_hard_negatives", "hard_negative_strategy", "tlc_weight",
                     "tlm_weight"):
            reasons[name] = f"it sets ContrastGeo's TLC / TLM losses, which {objective} does not train"
    if objective not in GEOLOCATION_OBJECTIVES:
        reasons["label_smoothing"] = "it smooths the labels of the contrastgeo and classifier losses"
        for name in ("place_prior", "place_prior_weight"):
            reasons[name] = (f"the place prior weighs the places of contrastgeo and classifier models; {objective} "
                             "has none")
    if objective == "location-prior":
        for name in ("pooling", "max_post_length"):
            reasons[name] = "it sets how posts are encoded, and location-prior encodes no text"
    if args.task is not None:
        for name in ("text_column", "label_column", "latitude_column", "longitude_column", "on_bad_rows"):
            reasons[name] = f"it applies to --train-file and --eval-file; task {args.task} has its own columns"
    elif objective == "location-prior":
        reasons["text_column"] = "location-prior reads labels and coordinates, no text"
    elif objective == "csp":
        reasons["label_column"] = "csp reads texts and coordinates, no labels"
    if args.checkpointing_steps is None and args.stop_after_steps is None:
        reasons["checkpoints_total_limit"] = "this run writes no checkpoints (--checkpointing-steps, --stop-after-steps)"
    if not args.shots:
        reasons["on_short_class"] = "it applies to a --shots draw; without one every training post is used"
    if objective not in GEOLOCATION_OBJECTIVES:
        reasons["learning_rate"] = frozen_encoder
    elif args.lora:
        reasons["learning_rate"] = ("with LoRA the text encoder's adapters train at --lora-learning-rate (pass "
                                    "--no-lora to fine-tune the whole encoder at --learning-rate)")
    if not args.lora:
        lora_off = frozen_encoder if objective not in GEOLOCATION_OBJECTIVES else "this run has no --lora"
        for name in ("lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_learning_rate"):
            reasons[name] = f"it configures LoRA, and {lora_off}"
    if model_config.get("char_ngram_buckets", 0) == 0:
        for name in ("char_ngram_init", "char_ngram_start_scale", "char_ngram_start_at", "char_ngram_learning_rate"):
            reasons[name] = ("this model has no character n-gram channel (add one with --model-config "
                             "char_ngram_buckets=N)")
    elif args.char_ngram_init == "zeros":
        for name in ("char_ngram_start_scale", "char_ngram_start_at"):
            reasons[name] = "it applies to a channel started from the training posts, not to --char-ngram-init zeros"
    location_mode = model_config.get("location_mode")
    if location_mode not in ("prompt", "hybrid"):
        reasons["prompt_templates"] = f"location_mode {location_mode!r} puts no place names into prompts"
    if location_mode not in ("coordinates", "hybrid"):
        reasons["location_encoder_kind"] = f"location_mode {location_mode!r} has no coordinate encoder"
    return reasons


def refuse_unread_flags(args, given) -> None:
    """Raise ValueError naming each flag in `given` (flag dests and model_config fields the user asked for, see
    `requested_settings`) that this run would not read: a flag is never silently ignored."""
    reasons = _unread_flag_reasons(args)
    unread = [f"--{name.replace('_', '-')} ({reasons[name]})" for name in sorted(given & set(reasons))]
    if unread:
        raise ValueError(f"--objective {args.objective}: flag(s) this run would not read: {'; '.join(unread)}")


__all__ = ["GEOLOCATION_OBJECTIVES", "refuse_unread_flags", "requested_settings"]
