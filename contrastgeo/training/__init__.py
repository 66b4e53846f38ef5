"""Training for ContrastGeo models: `python train.py ...` or `accelerate launch train.py ...` (see `train.py --help`).

`main(argv)` parses flags (and a `--config` YAML/JSON file) and calls `training_function(config, args)`, the
Accelerate loop of every objective: contrastgeo (TLC + TLM), classifier (the supervised baseline), csp (location
encoder pre-training) and location-prior.
"""

import logging

from .config import build_parser, hyperparameters, load_config_file, parse_args
from .defaults import MODEL_DEFAULTS, OBJECTIVE_DEFAULTS, OBJECTIVES, RUN_DEFAULTS
from .loops import training_function


def main(argv=None) -> dict:
    """Run `train.py` with `argv` (default: sys.argv); returns the final evaluation results."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        args = parse_args(argv)
    except ValueError as error:
        build_parser().error(str(error))  # usage + message, exit status 2
    return training_function(hyperparameters(args), args)


__all__ = [
    "MODEL_DEFAULTS", "OBJECTIVES", "OBJECTIVE_DEFAULTS", "RUN_DEFAULTS", "build_parser", "hyperparameters",
    "load_config_file", "main", "parse_args", "training_function",
]
