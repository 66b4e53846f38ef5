"""benchmarks/speed_training.py: where its report goes, a GPU asked for where there is none, settings that cannot give
a measurement, what the timed loop reads from the device, and the memory of the training phase."""

import argparse
import mmap
import os
from pathlib import Path

import pytest
import torch

from tests.benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def speed_training():
    return load_benchmark_script("speed_training")


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


@pytest.mark.parametrize("flags, message", [
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--warmup-steps", "-1"], "--warmup-steps must be at least 0, got -1"),
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--batch-size", "-4"], "--batch-size must be at least 1, got -4"),
    (["--shots", "0"], "--shots must be at least 1, got 0"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--mixed-precision", "fp16"], "fp16 needs --device cuda"),
    (["--model-name-or-path", "/no/such/encoder"], "/no/such/encoder: no such folder"),
])
def test_settings_that_cannot_give_a_measurement_are_refused_before_any_worker(speed_training, monkeypatch, flags,
                                                                              message):
    # --steps 0 used to end in an UnboundLocalError inside each worker, --repeats 0 in an IndexError after them all,
    # and fp16 on the CPU timed fp32 steps (Accelerate has no CPU autocast for it).
    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(speed_training, "measure", no_worker)
    with pytest.raises(SystemExit, match=message):
        speed_training.main(flags)


class _DeviceValue:
    """A stand-in for a CUDA tensor: reading it (int / float) is logged, as it would wait for the device."""

    def __init__(self, value, events):
        self.value, self.events = value, events

    def sum(self):
        return _DeviceValue(self.value, self.events)

    def __len__(self):
        return 2  # posts in the batch: a shape, known without the device

    def __int__(self):
        self.events.append("read")
        return int(self.value)

    def __float__(self):
        self.events.append("read")
        return float(self.value)


def test_the_timed_steps_read_nothing_from_the_device_until_the_clock_stops(speed_training):
    events = []
    batches = iter([{"attention_mask": _DeviceValue(tokens, events)} for tokens in (5, 7, 9, 11)])

    def step(batch, micro_batch):
        events.append(f"step {micro_batch}")
        return {"num_candidates": _DeviceValue(32, events)}

    timing = speed_training.timed_steps(step, batches, warmup_steps=1, steps=3,
                                        synchronize=lambda: events.append("sync"),
                                        reset_device_peak=lambda: events.append("reset"))
    last_sync = len(events) - 1 - events[::-1].index("sync")
    assert events[:last_sync + 1] == ["step 0", "sync", "reset", "step 1", "step 2", "step 3", "sync"]
    assert set(events[last_sync + 1:]) == {"read"}  # per-step values are read after the end of the timing
    assert timing["post_tokens"] == [7, 9, 11] and timing["candidates"] == [32.0] * 3 and timing["posts"] == 6


def _rss_mb():
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux /proc/self/clear_refs")
def test_the_training_phase_memory_is_not_hidden_by_an_earlier_passing_peak(speed_training):
    # Building a run holds memory for a moment (data, GeoNames, the n-gram start); ru_maxrss after minus before the
    # training phase then misses what the phase itself allocates below that earlier peak.
    # Anonymous maps, not Python objects: malloc may keep a freed block resident and hand it out again, which would
    # make the phase's allocation cost no new memory (it did, once, late in a full test run).
    passing = _touched_anonymous_map(200)
    passing.close()
    memory = speed_training.PhasePeakRSS()
    held = _touched_anonymous_map(60)
    phase = memory.stop()
    assert phase["exact"]
    assert 50 <= phase["increase_mb"] <= 120, phase
    assert phase["peak_mb"] >= _rss_mb() - 1 and phase["process_peak_mb"] >= phase["peak_mb"]
    held.close()


def _touched_anonymous_map(size_mb):
    region = mmap.mmap(-1, size_mb * 2**20)
    for offset in range(0, len(region), mmap.PAGESIZE):
        region[offset] = 1
    return region


def test_the_report_names_the_precision_the_commit_and_counts_the_posts_trained(speed_training, tmp_path):
    options = argparse.Namespace(results=str(tmp_path / "report.md"), device="cpu", mixed_precision="bf16",
                                 threads=1, task="vardial-ch", shots=1, batch_size=4, model_name_or_path=None,
                                 warmup_steps=1, steps=10, repeats=1)
    result = {"method": "classifier", "max_candidates": None, "cpu_step_time_s": 0.5, "step_time_s": 0.6,
              "steps_per_s": 1 / 0.6, "round_step_times_s": [0.5], "mean_posts_per_step": 3.8, "mean_post_tokens": 90,
              "peak_rss_mb": 700.0, "training_rss_increase_mb": 40.0, "training_rss_exact": True,
              "peak_gpu_memory_mb": None, "gpu_name": None, "torch": torch.__version__, "data": {"num_places": 38}}
    contrastgeo = {**result, "method": "contrastgeo", "max_candidates": 32, "mean_candidates": 32.0}
    speed_training.write_report(options, [result, contrastgeo], 1.0, [0.1, 0.2], speed_training.datetime.datetime(
        2026, 1, 1), ["--mixed-precision", "bf16"], "abc123")
    report = Path(options.results).read_text()
    assert "Command: `python benchmarks/speed_training.py --mixed-precision bf16` at commit `abc123`" in report
    assert "CPU only, mixed precision bf16" in report
    assert "| classifier | - | 0.500 | 2.000 | 0.500 | 1.667 | 7.6 | 90 | 700 | 40 | - |" in report
