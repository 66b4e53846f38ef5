"""`training_function(config, args)`: the Accelerate training loop of every objective.

The shape of Accelerate's `complete_nlp_example.py`: one `accelerator.prepare`, gradient accumulation, mixed
precision, `save_state` / `load_state` checkpoints, `gather_for_metrics` evaluation, tqdm on the main process and
optional TensorBoard tracking.

Resuming: a checkpoint (`checkpoints.py`) holds the model, optimizer, scheduler, every process's RNG states, the loop
position and the running loss sums (`TrainingProgress`), and the run's settings, compared before any data is loaded.
Batches and candidate places depend only on (seed, epoch) and (seed, step), so a resumed run skips the consumed
batches of its epoch (`skip_first_batches`) and ends with the weights, metrics, `train_results.json` loss and
`log_history.jsonl` of an uninterrupted run; records that an interrupted session logged after its last checkpoint are
dropped from the logs (TensorBoard: `purge_step`).

Outputs in `--output-dir`: the model (safetensors, config with the label set, remote code, tokenizer), its card
`README.md` (`model_card.py`), `eval_results.json`, `train_results.json`, `training_config.json`,
`log_history.jsonl`, `eval_history.jsonl` (with `--eval-steps`), `checkpoints/step_N/`, `runs/contrastgeo/`
(TensorBoard, `--with-tracking`) and `text_encoder_lora/` (`--save-lora-adapter`). `--push-to-hub` uploads all but
the checkpoints.
"""

import gc
import json
import shutil
import time
from pathlib import Path

import torch

from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ..launch import accelerate_cpu_flag
from .checkpoints import (
    check_checkpoint_matches,
    checkpoint_signature,
    drop_records_after_step,
    read_progress,
    resolve_checkpoint,
    write_checkpoint,
)
from .config import hub_repo_id
from .lora import TEXT_ENCODER_ATTRIBUTES
from .model_card import write_model_card
from .run import build_run

logger = get_logger(__name__)
PUSH_IGNORE_PATTERNS = ["checkpoints/*"]
TRACKER_PROJECT = "contrastgeo"  # TensorBoard logs go to runs/<this>
class TrainingProgress:
    """Where the loop is: optimizer steps done, current epoch, batches of that epoch consumed, micro-batches in all.
    Checkpoints carry it as JSON (`checkpoints.write_checkpoint`), not through `register_for_checkpointing`, whose
    objects Accelerate reads back with `torch.load(weights_only=False)`."""

    def __init__(self):
        self.completed_steps = 0
        self.epoch = 0
        self.batches_in_epoch = 0
        self.micro_batches = 0
        # The running sums of `_StepLogs` when the checkpoint was written (averaged over processes): the logging
        # window open at the checkpoint, and the loss of the whole run (train_results.json's train_loss).
        self.window_logs = {"sums": {}, "count": 0}
        self.run_loss = {"sums": {}, "count": 0}
        self.tlm_monitor = {}  # `TLMCollapseMonitor.state_dict()`; empty in checkpoints written before it was kept

    def state_dict(self):
        return dict(vars(self))

    def load_state_dict(self, state):
        for key, value in state.items():
            setattr(self, key, value)


def _write_json(path, content):
    Path(path).write_text(json.dumps(content, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def _append_jsonl(path, record):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")


def _flat_for_tracker(config):
    return {key: value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
            for key, value in config.items() if value is not None}


class _StepLogs:
    """Running sums of the step's logged values between two logging steps."""

    def __init__(self):
        self.sums, self.count = {}, 0

    def add(self, logs):
        for name, value in logs.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1

    def reduce(self, accelerator):
        means = {name: float(accelerator.reduce(total / self.count, "mean")) for name, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means

    def state(self, accelerator) -> dict:
        """The running sums averaged over processes (every process calls it), for a checkpoint. Restored on every
        process, they give the means an uninterrupted run logs: the mean over processes is linear in the sums."""
        return {"sums": {name: float(accelerator.reduce(torch.as_tensor(total, dtype=torch.float32,
                                                                         device=accelerator.device).clone(), "mean"))
                         for name, total in self.sums.items()}, "count": self.count}

    def restore(self, state: dict, device) -> None:
        self.sums = {name: torch.tensor(total, dtype=torch.float32, device=device)
                     for name, total in state["sums"].items()}
        self.count = state["count"]


def optimization_step(accelerator, run, model, optimizer, lr_scheduler, batch, micro_batch: int, trainable,
                      max_grad_norm: float) -> dict:
    """One micro-batch: the objective's loss, backward, and (at accumulation boundaries) clipping and the update.
    Returns the step's detached log values."""
    with accelerator.accumulate(model):
        loss, logs = run.step(model, batch, micro_batch)
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm:
            accelerator.clip_grad_norm_(trainable, max_grad_norm)
        optimizer.step()
        if accelerator.sync_gradients:
            accelerator.unwrap_model(model).clamp_logit_scale_()
        lr_scheduler.step()
        optimizer.zero_grad()
    return logs


def _remove_earlier_run(output_dir: Path) -> None:
    """Delete what an earlier run left that this one may not rewrite: checkpoints (`latest` would resume them),
    results, adapters and TensorBoard logs. Its model files are replaced when this run saves."""
    stale = [output_dir / name for name in ("checkpoints", "eval_results.json", "train_results.json",
                                            f"runs/{TRACKER_PROJECT}", *TEXT_ENCODER_ATTRIBUTES.values())]
    removed = [path for path in stale if path.exists()]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if removed:
        logger.info("--overwrite-output-dir: removed the earlier run's %s", ", ".join(
            str(path.relative_to(output_dir)) for path in removed))


def training_function(config: dict, args) -> dict:
    """Train, evaluate and save one run. `config`: hyper-parameters (`config.hyperparameters(args)`); `args`: data
    sources, output and run settings. Returns the final evaluation results ({} without evaluation data)."""
    accelerator = Accelerator(
        cpu=accelerate_cpu_flag(args.cpu), mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=config["gradient_accumulation_steps"],
        log_with="tensorboard" if args.with_tracking else None,
        project_config=ProjectConfiguration(project_dir=args.output_dir,
                                            logging_dir=str(Path(args.output_dir) / "runs")),
    )
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    # Before build_run, which settles some settings from the data (e.g. turns the default place prior off).
    signature = checkpoint_signature(config, accelerator, args)
    checkpoint = None
    if args.resume_from_checkpoint:
        # Checked before the data and the model are loaded: a wrong checkpoint fails in seconds.
        checkpoint = resolve_checkpoint(args.resume_from_checkpoint, output_dir, accelerator.num_processes,
                                        warn=logger.warning)
        check_checkpoint_matches(checkpoint, signature)
    set_seed(config["seed"])
    run = build_run(config, args, accelerator)

    prepared = accelerator.prepare(run.model, run.optimizer, run.train_dataloader, run.lr_scheduler,
                                   *([run.eval_dataloader] if run.eval_dataloader is not None else []))
    model, optimizer, train_dataloader, lr_scheduler = prepared[:4]
    eval_dataloader = prepared[4] if run.eval_dataloader is not None else None
    progress = TrainingProgress()
    log_path, eval_history_path = output_dir / "log_history.jsonl", output_dir / "eval_history.jsonl"
    step_logs, run_logs = _StepLogs(), _StepLogs()
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
        try:
            accelerator.load_state(str(checkpoint))
            progress.load_state_dict(read_progress(checkpoint))
        except Exception as error:
            raise RuntimeError(f"--resume-from-checkpoint {checkpoint}: could not load the checkpoint ({error}); "
                               "resume from an earlier one (--resume-from-checkpoint PATH)") from error
        step_logs.restore(progress.window_logs, accelerator.device)
        if progress.tlm_monitor:
            run.tlm_monitor.load_state_dict(progress.tlm_monitor)
        run_logs.restore(progress.run_loss, accelerator.device)
        if accelerator.is_main_process:
            # A session that went on past this checkpoint logged steps this one logs again.
            dropped = sum(drop_records_after_step(path, progress.completed_steps) for path in (log_path, eval_history_path))
            if dropped:
                logger.info("dropped %d log records written after step %d by the interrupted session", dropped,
                            progress.completed_steps)
    elif accelerator.is_main_process:
        # A fresh run starts fresh logs; a resumed one appends to those of its earlier sessions.
        for path in (log_path, eval_history_path):
            path.unlink(missing_ok=True)
        if args.overwrite_output_dir:
            _remove_earlier_run(output_dir)
    if args.with_tracking:
        # purge_step: TensorBoard hides what the interrupted session logged from this step on.
        init_kwargs = {"tensorboard": {"purge_step": progress.completed_steps + 1}} if checkpoint is not None else {}
        accelerator.init_trackers(TRACKER_PROJECT, _flat_for_tracker(config), init_kwargs=init_kwargs)

    total_steps = run.total_steps
    logger.info("%s: %d optimizer steps (%d epochs of %d), %d processes x batch %d x accumulation %d; data: %s",
                config["objective"], total_steps, run.num_epochs, run.steps_per_epoch, accelerator.num_processes,
                config["batch_size"], config["gradient_accumulation_steps"], run.data_description)

    saved_steps = set()

    def save_checkpoint():
        progress.window_logs, progress.run_loss = step_logs.state(accelerator), run_logs.state(accelerator)
        progress.tlm_monitor = run.tlm_monitor.state_dict()
        write_checkpoint(accelerator, output_dir / "checkpoints" / f"step_{progress.completed_steps}",
                         {**signature, "completed_steps": progress.completed_steps, "epoch": progress.epoch},
                         progress.state_dict(), total_limit=args.checkpoints_total_limit)
        saved_steps.add(progress.completed_steps)

    def evaluate():
        model.eval()
        try:
            return run.evaluate(accelerator, model, eval_dataloader)
        finally:
            model.train()

    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    stop_at = total_steps
    if args.stop_after_steps is not None:
        stop_at = min(total_steps, progress.completed_steps + args.stop_after_steps)
    progress_bar = tqdm(total=total_steps, initial=progress.completed_steps, desc=config["objective"],
                        disable=not accelerator.is_local_main_process)
    session_start, session_steps = time.perf_counter(), 0
    model.train()
    while progress.completed_steps < stop_at:
        train_dataloader.set_epoch(progress.epoch)
        batches = train_dataloader
        if progress.batches_in_epoch:
            batches = accelerator.skip_first_batches(train_dataloader, progress.batches_in_epoch)
        epoch_finished = True
        for batch in batches:
            logs = optimization_step(accelerator, run, model, optimizer, lr_scheduler, batch, progress.micro_batches,
                                     trainable, config["max_grad_norm"])
            progress.batches_in_epoch += 1
            progress.micro_batches += 1
            step_logs.add(logs)
            run_logs.add({"loss": logs["loss"]})
            if not accelerator.sync_gradients:
                continue
            progress.completed_steps += 1
            session_steps += 1
            progress_bar.update(1)
            step = progress.completed_steps
            # The logging window open at a --stop-after-steps stop goes into the checkpoint and on in the next session.
            if step % args.logging_steps == 0 or step == total_steps:
                record = {"step": step, "epoch": progress.epoch, **step_logs.reduce(accelerator)}
                record.update({f"lr_{group['name']}": group["lr"] for group in optimizer.param_groups})
                progress_bar.set_postfix(loss=f"{record['loss']:.4f}")
                if accelerator.is_main_process:
                    _append_jsonl(log_path, record)
                if args.with_tracking:
                    accelerator.log(record, step=step)
                if "loss_tlm" in record:
                    run.tlm_monitor.update(step, record["loss_tlm"], record["tlm_constant_entropy"])
            if args.eval_steps and step % args.eval_steps == 0 and step < total_steps and eval_dataloader is not None:
                results = evaluate()
                logger.info("step %d: %s", step, results)
                if accelerator.is_main_process:
                    _append_jsonl(eval_history_path, {"step": step, **results})
                if args.with_tracking:
                    accelerator.log({f"eval/{key}": value for key, value in results.items()}, step=step)
            if isinstance(args.checkpointing_steps, int) and step % args.checkpointing_steps == 0:
                save_checkpoint()
            if step >= stop_at:
                epoch_finished = False
                break
        if epoch_finished:
            progress.epoch += 1
            progress.batches_in_epoch = 0
            if args.checkpointing_steps == "epoch":
                save_checkpoint()
    progress_bar.close()
    session_runtime = time.perf_counter() - session_start

    if progress.completed_steps < total_steps:
        if progress.completed_steps not in saved_steps:
            save_checkpoint()
        logger.info("stopped after step %d of %d (--stop-after-steps); resume with --resume-from-checkpoint latest",
                    progress.completed_steps, total_steps)
        results = {}
    else:
        results = _finish(accelerator, model, eval_dataloader, run, config, args, progress, run_logs,
                          session_steps, session_runtime, evaluate)
    # DDP's reducer holds the process group. Left to interpreter exit, after the other process had gone, gloo's
    # teardown once waited forever there (a 2-process test on a loaded 2-core machine): drop it while all are here.
    del model, optimizer, train_dataloader, lr_scheduler, eval_dataloader, prepared
    accelerator.free_memory()
    gc.collect()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def push_output_dir(output_dir, repo_id, private):
    """Upload what a user of the model needs (not the resumable checkpoints: optimizer state, tens of MB each)."""
    from datasets_scripts.hub import push_folder

    try:
        url = push_folder(output_dir, repo_id, private=private, ignore_patterns=PUSH_IGNORE_PATTERNS,
                          commit_message="Upload model trained with ContrastGeo train.py")
    except Exception as error:
        raise RuntimeError(f"the model is saved in {output_dir}, but pushing it to {repo_id!r} failed ({error}); "
                           f"retry with `hf upload {repo_id} {output_dir} --exclude 'checkpoints/*'`") from error
    logger.info("pushed %s to the Hub: %s", output_dir, url)
    return url


def _finish(accelerator, model, eval_dataloader, run, config, args, progress, run_logs, session_steps,
            session_runtime, evaluate):
    """Merge LoRA, finish the model (`run.finish_model`), calibrate it, evaluate the model that is saved, save it with
    its results."""
    output_dir = Path(args.output_dir)
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if config["lora"]:
        from .lora import merge_lora, save_lora_adapters

        if args.save_lora_adapter and accelerator.is_main_process:
            for folder in save_lora_adapters(unwrapped, output_dir):
                logger.info("saved the LoRA adapter in %s", folder)
        merge_lora(unwrapped)
    if run.finish_model is not None:
        run.finish_model(unwrapped)
    if run.calibrate is not None:
        # The saved model carries the temperature, so its geolocate() scores are the calibrated ones evaluated here.
        temperature = run.calibrate(unwrapped)
        logger.info("probability temperature fitted after training (--calibration %s): %.4g", config["calibration"],
                    temperature)
    results = evaluate() if eval_dataloader is not None else {}
    if results:
        logger.info("evaluation: %s", results)
    # The mean loss of every micro-batch of the run, its earlier sessions included (as an uninterrupted run's).
    train_loss = run_logs.reduce(accelerator).get("loss") if run_logs.count else None
    if accelerator.is_main_process:
        unwrapped.save_pretrained(output_dir)
        if results:
            _write_json(output_dir / "eval_results.json", results)
        samples = session_steps * config["batch_size"] * config["gradient_accumulation_steps"] * accelerator.num_processes
        train_results = {
            "train_loss": train_loss, "train_steps": progress.completed_steps, "session_steps": session_steps,
            "epochs": progress.completed_steps / run.steps_per_epoch, "train_runtime_s": session_runtime,
            "train_samples_per_second": samples / session_runtime if session_runtime > 0 else None,
            "train_steps_per_second": session_steps / session_runtime if session_runtime > 0 else None,
            "num_processes": accelerator.num_processes,
        }
        _write_json(output_dir / "train_results.json", train_results)
        _write_json(output_dir / "training_config.json", {
            "hyperparameters": config, "data": run.data_description,
            "run": {key: value for key, value in vars(args).items() if key not in config},
        })
        repo_id = hub_repo_id(args) if args.push_to_hub else None
        write_model_card(output_dir, config, run.data_description, results, unwrapped.config.to_dict(),
                         train_results=train_results, repo_id=repo_id)
        logger.info("saved the model, its card and its results in %s", output_dir)
        if repo_id is not None:
            push_output_dir(output_dir, repo_id, args.hub_private_repo)
    return results


__all__ = ["TrainingProgress", "optimization_step", "training_function"]
