"""benchmarks/rescore_place_prior.py: arguments that cannot be scored are refused before any task loads."""

import pytest

from tests.benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def script():
    return load_benchmark_script("rescore_place_prior")


@pytest.mark.parametrize("flags, message", [
    (["--weights", "-1"], "--weights: place_prior_weight must be a finite number >= 0, got -1.0"),
    (["--weights", "nan"], "--weights: place_prior_weight must be a finite number >= 0, got nan"),
    (["--report", "/no/such/folder/report.md"], "the folder /no/such/folder does not exist"),
])
def test_weights_and_outputs_that_cannot_be_written_are_refused_first(script, tmp_path, capsys, flags, message):
    # A negative weight used to fail after the task was loaded; an unwritable report after every model was scored.
    with pytest.raises(SystemExit):
        script.parse_args([str(tmp_path), *flags])
    assert message in capsys.readouterr().err


def test_a_missing_model_folder_is_named_as_missing(script, capsys):
    with pytest.raises(SystemExit):
        script.parse_args(["/no/such/model"])
    assert "/no/such/model: no such folder" in capsys.readouterr().err
