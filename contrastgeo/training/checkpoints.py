"""train.py's checkpoints: finding one to resume from, checking it comes from the same configuration, writing one
whole or not at all.

A checkpoint folder `checkpoints/step_N` holds what `accelerator.save_state` writes (model as safetensors,
optimizer, scheduler and every process's RNG states, all read back with `weights_only=True`), the loop's
`TrainingProgress` as JSON (`training_progress.json`) and `checkpoint_run.json`: the run's hyper-parameters,
number of processes, mixed precision and training data (a built-in task and its splits, or each file's name, size and
SHA-256). A resumed run with other settings is refused before it loads any data,
naming them (only `eval_batch_size` and `calibration` may change: they act after training). `latest` skips a folder
missing any file the run needs, and a folder given by path is refused naming them (Accelerate itself would go on
without the RNG states).
"""

import hashlib
import json
import logging
import shutil
from pathlib import Path

from accelerate.logging import get_logger

logger = get_logger(__name__)
# Written into every checkpoint: what the run that wrote it was (see `checkpoint_signature`).
CHECKPOINT_RUN_FILE = "checkpoint_run.json"
# The loop's position and running loss sums (`loops.TrainingProgress.state_dict()`).
PROGRESS_FILE = "training_progress.json"
# Hyper-parameters that act only after training (final evaluation, calibration): a resumed run may change them.
AFTER_TRAINING_KEYS = ("eval_batch_size", "calibration")
# The run settings that say what it trains on (the files by content, see `data_signature`).
DATA_SETTINGS = ("task", "train_split", "eval_split", "text_column", "label_column", "latitude_column",
                 "longitude_column", "on_bad_rows", "on_short_class")
DATA_FILES = ("train_file", "eval_file", "places_file")


def missing_checkpoint_files(path, num_processes: int) -> list[str]:
    """The files a resumed run of `num_processes` processes reads that the checkpoint folder `path` lacks."""
    path = Path(path)
    needed = ["optimizer.bin", "scheduler.bin", PROGRESS_FILE,
              *(f"random_states_{index}.pkl" for index in range(num_processes))]
    missing = [name for name in needed if not (path / name).is_file()]
    if not ((path / "model.safetensors").is_file() or (path / "pytorch_model.bin").is_file()):
        missing.insert(0, "model.safetensors")
    return missing


def resolve_checkpoint(value, output_dir, num_processes: int = 1, warn=None) -> Path:
    """A checkpoint folder, or with 'latest' the complete `checkpoints/step_N` of `output_dir` with the largest N
    (`warn(message, *args)`, default `logging.warning`, names each incomplete one skipped).

    Raises ValueError when there is none, or when the folder lacks a file of the checkpoint (naming them)."""
    warn = warn or logging.getLogger(__name__).warning
    if value == "latest":
        folders = _step_folders(Path(output_dir) / "checkpoints")
        if not folders:
            raise ValueError(f"--resume-from-checkpoint latest: no checkpoints/step_N in {output_dir}")
        for path in reversed(folders):
            missing = missing_checkpoint_files(path, num_processes)
            if not missing:
                return path
            warn("--resume-from-checkpoint latest: skipping %s, which lacks %s", path, ", ".join(missing))
        raise ValueError(f"--resume-from-checkpoint latest: no complete checkpoint in {folders[0].parent} (each "
                         "step_N lacks some of model.safetensors, optimizer.bin, scheduler.bin, "
                         f"{PROGRESS_FILE}, random_states_<process>.pkl)")
    path = Path(value)
    if not path.is_dir():
        raise ValueError(f"--resume-from-checkpoint {value}: no such folder")
    missing = missing_checkpoint_files(path, num_processes)
    if missing:
        raise ValueError(f"--resume-from-checkpoint {value}: not a complete train.py checkpoint of a "
                         f"{num_processes}-process run, it lacks {', '.join(missing)}")
    return path


def _json_ready(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _file_fingerprint(path) -> dict | None:
    """A file by its name, size and SHA-256, not its path: the run may resume from another working directory."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        return {"name": path.name}  # the run itself names a missing file
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def data_signature(args) -> dict:
    """What a run trains and evaluates on: a built-in task and its splits, or the content of its files, and how
    they are read."""
    return {
        **{name: getattr(args, name) for name in DATA_SETTINGS},
        **{name: _file_fingerprint(getattr(args, name)) for name in DATA_FILES},
    }


def checkpoint_signature(config: dict, accelerator, args) -> dict:
    """What a checkpoint must share with the run that resumes it: the hyper-parameters that shape training (taken
    before `build_run`, which may settle some of them from the data), the training data, the number of processes
    (batch positions and per-process RNG states depend on it) and the mixed precision."""
    return {
        "hyperparameters": _json_ready({key: value for key, value in config.items() if key not in AFTER_TRAINING_KEYS}),
        "data": _json_ready(data_signature(args)),
        "num_processes": accelerator.num_processes,
        "mixed_precision": str(accelerator.mixed_precision),
    }


def _differences(saved, current, prefix=""):
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(saved) | set(current), key=str):
            if key not in saved or key not in current:
                if saved.get(key) != current.get(key):  # a key added or dropped as None is no difference
                    found.append(f"{prefix}{key}: checkpoint {saved.get(key)!r}, this run {current.get(key)!r}")
                continue
            found.extend(_differences(saved[key], current[key], f"{prefix}{key}."))
        return found
    return [] if saved == current else [f"{prefix.rstrip('.')}: checkpoint {saved!r}, this run {current!r}"]


def check_checkpoint_matches(checkpoint, signature: dict) -> None:
    """Raise ValueError when the checkpoint folder was written by a run of another configuration (naming each
    setting that differs). A checkpoint written before checkpoints recorded their run is resumed with a warning."""
    path = Path(checkpoint) / CHECKPOINT_RUN_FILE
    if not path.is_file():
        logger.warning("%s has no %s (written by an older train.py): resuming without checking that it comes from "
                       "the same configuration", checkpoint, CHECKPOINT_RUN_FILE)
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"--resume-from-checkpoint {checkpoint}: unreadable {CHECKPOINT_RUN_FILE} ({error})") from None
    # A checkpoint of an earlier train.py may lack a part of today's signature (e.g. "data"): what it has is compared.
    signature = {key: value for key, value in signature.items() if key in saved}
    saved = {key: saved[key] for key in signature}
    saved["hyperparameters"] = {key: value for key, value in (saved["hyperparameters"] or {}).items()
                                if key not in AFTER_TRAINING_KEYS}
    # The settings that change most at once first: another objective, encoder or LoRA choice explains the rest.
    first = ("hyperparameters.objective", "hyperparameters.model_name_or_path", "hyperparameters.lora:")
    differences = sorted(_differences(saved, signature),
                         key=lambda text: next((i for i, start in enumerate(first) if text.startswith(start)),
                                               len(first)))
    if differences:
        raise ValueError(
            f"--resume-from-checkpoint {checkpoint}: that checkpoint was written by a run with different settings ("
            + "; ".join(differences) + "). A resumed run must repeat the settings of the run it continues (its "
            "training_config.json, or the flags it was started with); to train with new ones, start a fresh run "
            "(another --output-dir, or --overwrite-output-dir)")


def drop_records_after_step(path: Path, last_step: int) -> int:
    """Drop the records of `path` logged after `last_step` (by a session that went on past its last checkpoint)."""
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= last_step]
    if len(kept) != len(lines):
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return len(lines) - len(kept)


def read_progress(checkpoint) -> dict:
    """The loop's progress saved in a checkpoint folder (plain JSON: no pickle is read from a checkpoint)."""
    return json.loads((Path(checkpoint) / PROGRESS_FILE).read_text(encoding="utf-8"))


def write_checkpoint(accelerator, folder: Path, run_record: dict, progress: dict,
                     total_limit: int | None = None) -> None:
    """Save the accelerator's state and the loop's `progress` into `folder` whole or not at all: written as
    `<folder>.tmp` and renamed once every process is done, so a run killed while saving leaves nothing that
    `resolve_checkpoint` would take. With
    `total_limit`, the oldest `step_N` folders beside it are then deleted down to that many (this one is kept).
    Every process calls it."""
    partial = folder.with_name(folder.name + ".tmp")
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)  # left by a session killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / CHECKPOINT_RUN_FILE).write_text(json.dumps(run_record, indent=2, default=str), encoding="utf-8")
        (partial / PROGRESS_FILE).write_text(json.dumps(progress, indent=2), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        partial.rename(folder)
        if total_limit is not None:
            _remove_oldest_checkpoints(folder.parent, keep=total_limit)
    accelerator.wait_for_everyone()


def _step_folders(checkpoints_dir: Path) -> list[Path]:
    """The `step_N` folders of `checkpoints_dir`, oldest (smallest N) first; `step_N.tmp` and other names left out."""
    folders = [path for path in checkpoints_dir.glob("step_*") if path.name[5:].isdigit() and path.is_dir()]
    return sorted(folders, key=lambda path: int(path.name[5:]))


def _remove_oldest_checkpoints(checkpoints_dir: Path, keep: int) -> None:
    for path in _step_folders(checkpoints_dir)[:-keep]:
        shutil.rmtree(path)
        logger.info("removed %s (--checkpoints-total-limit %d)", path, keep)


__all__ = ["AFTER_TRAINING_KEYS", "CHECKPOINT_RUN_FILE", "check_checkpoint_matches", "checkpoint_signature",
           "data_signature", "drop_records_after_step", "missing_checkpoint_files", "read_progress",
           "resolve_checkpoint", "write_checkpoint"]
