"""The n-gram channel's hashing must not depend on the process: Python's `hash()` of a str is salted per process
(PYTHONHASHSEED), so a featurizer built on it would give a saved model other buckets after a reload, and each
process of a distributed run its own buckets. CRC-32 is the same everywhere; these tests pin that down."""

import json
import os
import subprocess
import sys
from pathlib import Path

from modeling_contrastgeo.char_ngrams import CharNgramFeaturizer

REPO_ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht isch s Beschte", "", "Ћирилица и latinica"]
# The module alone (it imports only torch), not the package, whose transformers import would cost most of the time.
FEATURIZE = (
    "import importlib.util, json, sys; "
    "spec = importlib.util.spec_from_file_location('char_ngrams', 'modeling_contrastgeo/char_ngrams.py'); "
    "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
    "inputs = module.CharNgramFeaturizer(4096, 1, 5)(json.loads(sys.argv[1])); "
    "print(json.dumps({name: value.tolist() for name, value in inputs.items()}))"
)


def _featurize_in_a_new_process(hash_seed: str) -> dict:
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run([sys.executable, "-c", FEATURIZE, json.dumps(TEXTS)], cwd=REPO_ROOT, env=environment,
                            capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout)


def test_buckets_are_the_same_in_processes_with_different_hash_seeds():
    here = {name: value.tolist() for name, value in CharNgramFeaturizer(4096, 1, 5)(TEXTS).items()}
    assert _featurize_in_a_new_process("1") == _featurize_in_a_new_process("2") == here
    # Not vacuous: the posts do fill buckets, and the empty post is all padding.
    assert sum(bucket > 0 for bucket in here["char_ngram_ids"][0]) > 20
    assert not any(here["char_ngram_ids"][2])
