"""Training speed of ContrastGeo (TLC + TLM) against the classifier baseline, same encoder, batch and task.

    python benchmarks/speed_training.py                       # midwest-2017 (70 places), MiniLM, batch 32
    python benchmarks/speed_training.py --task vardial-bcms --steps 30
    python benchmarks/speed_training.py --device cuda --mixed-precision bf16   # RESULTS_speed_training_gpu_bf16.md

Each method runs in its own subprocess (one training process each, no distribution), so that the peak resident
memory (`resource.getrusage(...).ru_maxrss`, which sees torch's allocations, unlike tracemalloc) is its own. A
worker builds the run exactly as `train.py` does (`contrastgeo.training.run.build_run` with the default settings,
the same few-shot draw and batch order for every method), runs `--warmup-steps` untimed optimizer steps, then times
`--steps` steps of `contrastgeo.training.loops.optimization_step`. "Peak RSS" is the worker's whole peak; "RSS
increase while training" is the peak resident memory of the training phase (warm-up and timed steps) above the
resident memory when that phase starts: the peak is reset there (`/proc/self/clear_refs`), so that what building the
run held for a moment (reading the data, GeoNames, fitting the n-gram channel's start) does not hide it.

ContrastGeo's extra cost per step is the candidate places' prompts through the text encoder (positives of the batch
plus random places up to `--max-candidates`) and the TLM head on 1 + k pairs per post; the script also times
ContrastGeo with every place as a candidate (`--max-candidates 0`) to show what the bound saves.

Step time: workers run single-threaded by default (`--threads 1`) and a step's time is the worker's CPU time
(`time.process_time`) per step, which on a machine shared with other jobs is what the step takes on an idle core;
wall-clock steps/s are reported next to it (with `--threads` > 1 the ratio uses wall-clock time). Rounds interleave
the methods and each keeps its fastest round. On a GPU (`--device cuda`, optionally `--mixed-precision bf16`) a step's
time is wall-clock time with the device synchronised at both ends of the timed steps (the script reads nothing back
from the device between them; train.py reads its logs every --logging-steps only), and the peak GPU memory of the
timed steps
(`torch.cuda.max_memory_allocated`, reset after the warm-up) is reported. fp16 needs the GPU (on the CPU Accelerate
would train in fp32). The report goes to benchmarks/RESULTS_speed_training.md
(RESULTS_speed_training_gpu_<fp32|bf16>.md on a GPU; rewritten on each run) and the last line printed is
`ratio=<ContrastGeo step time / classifier step time>` for the default candidate bound.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS_speed_training.md"
RESULT_PREFIX = "RESULT "


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _current_rss_mb() -> float | None:
    """This process's resident memory now (Linux /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (`ru_maxrss`, VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


class PhasePeakRSS:
    """The peak resident memory of one phase of this process, and how far it rose above the RSS at the phase's start.

    `ru_maxrss` is the process's high-water mark: read before and after a phase, its difference misses whatever
    the phase allocated below an earlier, passing peak (loading data or weights), so the peak is reset when the phase
    starts. Where it cannot be reset (not Linux), `increase_mb` falls back to the rise of the high-water mark, a lower
    bound, and `exact` is False.
    """

    def __init__(self):
        self.peak_before_mb = _peak_rss_mb()
        self.start_mb = _current_rss_mb()
        self.exact = self.start_mb is not None and _reset_peak_rss()

    def stop(self) -> dict:
        phase_peak = _peak_rss_mb()
        if self.exact:
            return {"peak_mb": phase_peak, "increase_mb": phase_peak - self.start_mb,
                    "process_peak_mb": max(self.peak_before_mb, phase_peak), "exact": True}
        return {"peak_mb": None, "increase_mb": max(0.0, phase_peak - self.peak_before_mb),
                "process_peak_mb": phase_peak, "exact": False}


def timed_steps(step, batches, warmup_steps: int, steps: int, synchronize=None, reset_device_peak=None) -> dict:
    """Run `warmup_steps` untimed then `steps` timed calls of `step(batch, micro_batch) -> logs` (micro_batch: 0, 1,
    ... as train.py counts them) on batches from `batches`.

    On a GPU, `synchronize` is called at both ends of the timed steps (and `reset_device_peak` after the warm-up).
    The post tokens of each batch and the logged `num_candidates` are kept as tensors and read only once the clock
    has stopped: reading a CUDA tensor (`int()`, `float()`, `.item()`) waits for the device, which train.py's loop
    does only at its logging steps. Returns wall-clock and CPU seconds of the timed steps, the posts they trained on (an
    epoch's last batch may be short), and those per-step values.
    """
    post_tokens, candidates, posts = [], [], 0
    for index in range(warmup_steps + steps):
        if index == warmup_steps:
            if synchronize is not None:
                synchronize()
            if reset_device_peak is not None:
                reset_device_peak()
            start, start_cpu = time.perf_counter(), time.process_time()
        batch = next(batches)
        logs = step(batch, index)
        if index >= warmup_steps:
            posts += len(batch["attention_mask"])  # a shape: no device read
            post_tokens.append(batch["attention_mask"].sum())
            if "num_candidates" in logs:
                candidates.append(logs["num_candidates"])
    if synchronize is not None:
        synchronize()
    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"seconds": elapsed, "cpu_seconds": elapsed_cpu, "posts": posts,
            "post_tokens": [int(value) for value in post_tokens], "candidates": [float(value) for value in candidates]}


def run_worker(options) -> dict:
    """Build one method's run as train.py does and time `options.steps` optimizer steps."""
    sys.path.insert(0, str(REPO_ROOT))
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from contrastgeo.training.config import hyperparameters, parse_args
    from contrastgeo.training.loops import optimization_step
    from contrastgeo.training.run import build_run

    on_gpu = options.device == "cuda"  # main's check_options refused it where torch sees no CUDA device
    torch.set_num_threads(options.threads)
    with tempfile.TemporaryDirectory() as output_dir:
        argv = ["--objective", options.worker, "--task", options.task, "--shots", str(options.shots),
                "--seed", "0", "--batch-size", str(options.batch_size), "--output-dir", output_dir,
                "--mixed-precision", options.mixed_precision] + ([] if on_gpu else ["--cpu"])
        if options.model_name_or_path:
            argv += ["--model-name-or-path", options.model_name_or_path]
        if options.max_candidates is not None:
            argv += ["--max-candidates", str(options.max_candidates)]
        args = parse_args(argv)
        config = hyperparameters(args)
        accelerator = Accelerator(cpu=not on_gpu, mixed_precision=options.mixed_precision)
        set_seed(0)
        run = build_run(config, args, accelerator)
        model, optimizer, dataloader, lr_scheduler = accelerator.prepare(
            run.model, run.optimizer, run.train_dataloader, run.lr_scheduler
        )
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        model.train()

        def batches():
            epoch = 0
            while True:
                dataloader.set_epoch(epoch)
                yield from dataloader
                epoch += 1

        stream = batches()
        memory = PhasePeakRSS()  # the warm-up and the timed steps
        timing = timed_steps(
            lambda batch, micro_batch: optimization_step(accelerator, run, model, optimizer, lr_scheduler, batch,
                                                         micro_batch, trainable, config["max_grad_norm"]),
            stream, options.warmup_steps, options.steps,
            synchronize=torch.cuda.synchronize if on_gpu else None,
            reset_device_peak=torch.cuda.reset_peak_memory_stats if on_gpu else None,
        )
        training_memory = memory.stop()
        elapsed, elapsed_cpu = timing["seconds"], timing["cpu_seconds"]
        candidates, post_tokens = timing["candidates"], timing["post_tokens"]
    return {
        "method": options.worker,
        "max_candidates": config["max_candidates"] if options.worker == "contrastgeo" else None,
        "steps": options.steps,
        "step_time_s": elapsed / options.steps,
        "steps_per_s": options.steps / elapsed,
        "cpu_step_time_s": elapsed_cpu / options.steps,
        "mean_candidates": sum(candidates) / len(candidates) if candidates else None,
        "mean_post_tokens": sum(post_tokens) / len(post_tokens),
        "mean_posts_per_step": timing["posts"] / options.steps,
        "peak_rss_mb": training_memory["process_peak_mb"],
        "training_peak_rss_mb": training_memory["peak_mb"],
        "training_rss_increase_mb": training_memory["increase_mb"],
        "training_rss_exact": training_memory["exact"],
        "peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if on_gpu else None,
        "gpu_name": torch.cuda.get_device_name() if on_gpu else None,
        "torch": torch.__version__,
        "data": run.data_description,
    }


def measure(options, method, max_candidates=None) -> dict:
    """Run one worker subprocess and parse its result line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--task", options.task,
               "--shots", str(options.shots), "--batch-size", str(options.batch_size), "--steps", str(options.steps),
               "--warmup-steps", str(options.warmup_steps), "--threads", str(options.threads),
               "--device", options.device, "--mixed-precision", options.mixed_precision]
    if options.model_name_or_path:
        command += ["--model-name-or-path", options.model_name_or_path]
    if max_candidates is not None:
        command += ["--max-candidates", str(max_candidates)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"worker {method} failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def times_cpu(options) -> bool:
    """Whether a step's time is CPU time (a single-threaded CPU worker) rather than wall-clock time."""
    return options.threads == 1 and options.device == "cpu"


def step_time(result, options) -> float:
    """Seconds per step: CPU time for a single-threaded CPU worker, wall-clock time otherwise (see the module doc)."""
    return result["cpu_step_time_s"] if times_cpu(options) else result["step_time_s"]


def results_path(options) -> Path:
    if options.results:
        return Path(options.results)
    if options.device == "cuda":
        precision = "fp32" if options.mixed_precision == "no" else options.mixed_precision
        return RESULTS_PATH.with_name(f"RESULTS_speed_training_gpu_{precision}.md")
    return RESULTS_PATH


def write_report(options, results, ratio, loads, started, command, commit) -> None:
    basis = "CPU time" if times_cpu(options) else "wall-clock time"
    on_gpu = options.device == "cuda"
    device = f"GPU {results[0]['gpu_name']}" if on_gpu else "CPU only"
    device += f", mixed precision {options.mixed_precision}"
    lines = [
        "# Training speed: ContrastGeo vs the classifier baseline",
        "",
        "Written by `benchmarks/speed_training.py` (do not edit by hand).",
        "",
        f"- Command: `{' '.join(['python benchmarks/speed_training.py', *command])}` at commit `{commit}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch threads per worker {options.threads}; Python {platform.python_version()}, torch {results[0]['torch']}; "
        f"{device}",
        f"- Task `{options.task}`, {results[0]['data'].get('num_places')} places, K={options.shots} posts per "
        f"place, batch {options.batch_size}, encoder `{options.model_name_or_path or 'all-MiniLM-L6-v2 (default)'}`; "
        f"{options.warmup_steps} warm-up steps then {options.steps} timed optimizer steps per method, one process "
        f"each (its own subprocess), {options.repeats} interleaved round(s), fastest round kept",
        f"- Step time = {basis} per optimizer step; posts / s from the posts of the timed steps. RSS increase while "
        "training = the peak resident memory of the warm-up and timed steps above the RSS when they start. Load "
        f"average (1 min) before / after: {loads[0]:.2f} / {loads[1]:.2f} (a shared machine: wall-clock figures "
        "include waiting for other jobs)",
        "",
        "| method | candidate places per step (bound / mean) | step time (s) | steps / s | step time every round (s) "
        "| wall-clock steps / s | posts / s | mean post tokens per batch | peak RSS (MB) "
        "| RSS increase while training (MB) | peak GPU memory (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        bound = result["max_candidates"]
        candidates = "-" if result["method"] != "contrastgeo" else (
            f"{'all' if not bound else bound} / {result['mean_candidates']:.1f}")
        seconds = step_time(result, options)
        gpu_memory = result.get("peak_gpu_memory_mb")
        lines.append(
            f"| {result['method']} | {candidates} | {seconds:.3f} | {1 / seconds:.3f} | "
            f"{', '.join(f'{value:.3f}' for value in result['round_step_times_s'])} | {result['steps_per_s']:.3f} | "
            f"{result['mean_posts_per_step'] / seconds:.1f} | {result['mean_post_tokens']:.0f} | "
            f"{result['peak_rss_mb']:.0f} | {result['training_rss_increase_mb']:.0f}"
            f"{'' if result['training_rss_exact'] else ' (at least)'} | "
            f"{'-' if gpu_memory is None else f'{gpu_memory:.0f}'} |"
        )
    unbounded = results[2:]
    lines += [
        "",
        f"**ratio = {ratio:.3f}** (ContrastGeo step time with the default bound / classifier step time; goal <= 1.5)",
    ]
    if unbounded:
        lines.append(f"\nWith every place as a candidate the ratio is "
                     f"{step_time(unbounded[0], options) / step_time(results[0], options):.3f}: that is what the "
                     "candidate bound saves on this task.")
    lines.append("")
    results_path(options).write_text("\n".join(lines), encoding="utf-8")


def check_options(options) -> None:
    """Refuse settings that cannot give a measurement before any worker starts: SystemExit with the reason."""
    for flag, minimum in (("shots", 1), ("batch_size", 1), ("steps", 1), ("warmup_steps", 0), ("repeats", 1),
                          ("threads", 1)):
        value = getattr(options, flag)
        if value < minimum:
            raise SystemExit(f"--{flag.replace('_', '-')} must be at least {minimum}, got {value}")
    if options.mixed_precision == "fp16" and options.device != "cuda":
        raise SystemExit("--mixed-precision fp16 needs --device cuda (on the CPU Accelerate would train in fp32)")
    if options.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
    path = options.model_name_or_path
    if path and not Path(path).exists() and (Path(path).is_absolute() or path.startswith((".", "~"))
                                             or path.count("/") > 1):
        raise SystemExit(f"--model-name-or-path {path}: no such folder")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="midwest-2017", help="a built-in task (datasets_scripts)")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; each method keeps its fastest")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (1: step time = CPU time)")
    parser.add_argument("--model-name-or-path", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--max-candidates", type=int, default=None, help="ContrastGeo's bound (default: train.py's)")
    parser.add_argument("--no-unbounded", action="store_true", help="skip the every-place ContrastGeo run")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the workers train")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no",
                        help="Accelerate's mixed precision of the timed steps (train.py --mixed-precision)")
    parser.add_argument("--results", help="the Markdown report (default benchmarks/RESULTS_speed_training.md, "
                        "or RESULTS_speed_training_gpu_<precision>.md with --device cuda)")
    parser.add_argument("--worker", choices=("contrastgeo", "classifier"), help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    check_options(options)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if options.worker:
        print(RESULT_PREFIX + json.dumps(run_worker(options), default=str), flush=True)
        return

    started = datetime.datetime.now(datetime.timezone.utc)
    loads = [os.getloadavg()[0]]
    settings = [("classifier", None), ("contrastgeo", options.max_candidates)]
    if not options.no_unbounded:
        settings.append(("contrastgeo", 0))
    # Rounds interleave the methods so that a burst of load on a shared machine does not hit one method only.
    rounds = [[measure(options, method, bound) for method, bound in settings] for _ in range(options.repeats)]
    results = []
    for runs in zip(*rounds):
        fastest = dict(min(runs, key=lambda result: step_time(result, options)))
        fastest["round_step_times_s"] = [step_time(result, options) for result in runs]
        results.append(fastest)
    loads.append(os.getloadavg()[0])
    for result in results:
        seconds = step_time(result, options)
        print(f"{result['method']:12s} candidates={result['max_candidates']!s:5s} {1 / seconds:.3f} steps/s "
              f"({seconds:.3f} s/step; wall-clock {result['steps_per_s']:.3f} steps/s), "
              f"peak RSS {result['peak_rss_mb']:.0f} MB (+{result['training_rss_increase_mb']:.0f} MB training)")
    ratio = step_time(results[1], options) / step_time(results[0], options)
    sys.path.insert(0, str(REPO_ROOT))
    from contrastgeo.benchmarking.records import git_commit

    write_report(options, results, ratio, loads, started, sys.argv[1:] if argv is None else list(argv),
                 git_commit(REPO_ROOT))
    print(f"report: {results_path(options)}")
    print(f"ratio={ratio:.4f}")


if __name__ == "__main__":
    main()
