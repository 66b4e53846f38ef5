"""benchmarks/speed_training.py: where its report goes, and a GPU asked for where there is none."""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed_training.py"


@pytest.fixture(scope="module")
def speed_training():
    spec = importlib.util.spec_from_file_location("speed_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a CUDA device")
def test_asking_for_a_gpu_without_one_is_a_clear_error(speed_training):
    with pytest.raises(SystemExit, match="--device cuda: torch sees no CUDA device"):
        speed_training.main(["--worker", "classifier", "--device", "cuda"])


def test_reports_and_step_times_follow_the_device_and_precision(speed_training):
    parse = speed_training.argparse.Namespace
    cpu = parse(results=None, device="cpu", mixed_precision="no", threads=1)
    gpu = parse(results=None, device="cuda", mixed_precision="bf16", threads=1)
    assert speed_training.results_path(cpu).name == "RESULTS_speed_training.md"
    assert speed_training.results_path(gpu).name == "RESULTS_speed_training_gpu_bf16.md"
    assert speed_training.results_path(parse(**{**vars(gpu), "mixed_precision": "no"})).name == \
        "RESULTS_speed_training_gpu_fp32.md"
    result = {"cpu_step_time_s": 2.0, "step_time_s": 3.0}
    assert speed_training.step_time(result, cpu) == 2.0 and speed_training.step_time(result, gpu) == 3.0
