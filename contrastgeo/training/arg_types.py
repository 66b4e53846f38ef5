"""Value types of `train.py`'s flags and config-file keys: each parses one text and raises
`argparse.ArgumentTypeError` saying what it expected, which argparse and `config.load_config_file` turn into an
error naming the flag or key."""

import argparse
import json
import math

from modeling_contrastgeo.char_ngrams import CROSS_VALIDATED
from modeling_contrastgeo.place_prior import PLACE_PRIORS


def means_none(text):
    """"none" or "null" (any case): the spelling of a flag's None on the command line and in config files."""
    return str(text).lower() in ("none", "null")


def optional_int(text):
    return None if means_none(text) else int(text)


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def non_negative_float(text):
    value = float(text)
    if not value >= 0.0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def optional_non_negative_float(text):
    if means_none(text):
        return None
    try:
        return non_negative_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 or none, got {text}") from None


def place_prior(text):
    if means_none(text):
        return None
    if text not in PLACE_PRIORS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(PLACE_PRIORS)} or none, got {text}")
    return text


def start_scale(text):
    if str(text) == CROSS_VALIDATED:
        return CROSS_VALIDATED
    return optional_non_negative_float(text)


def fraction(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def checkpointing_steps(text):
    if str(text) == "epoch":
        return "epoch"
    return positive_int(text)


def key_value(text):
    """KEY=VALUE with VALUE parsed as JSON when it is JSON (numbers, true/false, null, lists), else a string."""
    if "=" not in str(text):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = str(text).split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
