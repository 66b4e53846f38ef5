"""train.py checkpoints and --resume-from-checkpoint beyond the clean stop of test_train.py: a run that crashed after
its last checkpoint (logs, train loss, TensorBoard), checkpoints of another configuration, and incomplete or
corrupt checkpoint folders."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.train_runs import geolocation_argv, log_history, one_torch_thread, tiny, train  # noqa: F401 (fixtures)

# Dropout and multinomial hard negatives draw on the RNG; 3 steps per epoch.
COMMON = ["--max-train-steps", 7, "--max-candidates", 4, "--logging-steps", 2, "--eval-steps", 2]


def _argv(tiny, output_dir, *extra):
    return geolocation_argv(tiny, output_dir, "--model-name-or-path", tiny["dropout_encoder"], *COMMON, *extra)


def _eval_steps(output_dir):
    lines = (output_dir / "eval_history.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def _tensorboard_losses(output_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = sorted({path.parent for path in (output_dir / "runs" / "contrastgeo").rglob("events.out.tfevents.*")})
    losses = {}
    for folder in folders:
        events = EventAccumulator(str(folder))  # purges what a restart's purge_step marks as orphaned
        events.Reload()
        if "loss" in events.Tags()["scalars"]:
            losses[str(folder)] = [(event.step, event.value) for event in events.Scalars("loss")]
    assert len(losses) == 1, losses
    return next(iter(losses.values()))


def test_a_run_that_crashed_after_its_last_checkpoint_resumes_into_the_logs_of_an_uninterrupted_one(tiny, tmp_path):
    uninterrupted = train(_argv(tiny, tmp_path / "a", "--with-tracking"))
    # The session logs and evaluates up to step 5 but its last checkpoint is step 3: as a crash at step 5 would leave
    # it (the stop's own checkpoint removed). Step 3 is inside a logging window (2, 4, 6).
    train(_argv(tiny, tmp_path / "b", "--with-tracking", "--checkpointing-steps", 3, "--stop-after-steps", 5))
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step_5")
    resumed = train(_argv(tiny, tmp_path / "b", "--with-tracking", "--resume-from-checkpoint", "latest"))

    assert resumed == uninterrupted
    weights = load_file(str(tmp_path / "a" / "model.safetensors"))
    for name, tensor in load_file(str(tmp_path / "b" / "model.safetensors")).items():
        torch.testing.assert_close(tensor, weights[name], rtol=0, atol=0)
    # No step logged twice, and the window open at the checkpoint (steps 3-4) is averaged as in one session.
    history_a, history_b = log_history(tmp_path / "a"), log_history(tmp_path / "b")
    assert [record["step"] for record in history_a] == [2, 4, 6, 7]
    assert history_b == history_a
    assert _eval_steps(tmp_path / "b") == _eval_steps(tmp_path / "a") == [2, 4, 6]
    # train_results.json's loss is the run's, not the last session's.
    results_a = json.loads((tmp_path / "a" / "train_results.json").read_text())
    results_b = json.loads((tmp_path / "b" / "train_results.json").read_text())
    assert results_b["train_loss"] == results_a["train_loss"] and results_b["train_steps"] == 7
    assert results_b["session_steps"] == 4
    assert _tensorboard_losses(tmp_path / "b") == _tensorboard_losses(tmp_path / "a")
    # The TLM-collapse monitor's window goes on from the checkpoint (logging steps 2 and 4 are past warm-up).
    progress = json.loads((tmp_path / "b" / "checkpoints" / "step_3" / "training_progress.json").read_text())
    assert progress["tlm_monitor"]["warned"] is False
    assert [loss for loss, _ in progress["tlm_monitor"]["history"]] == [history_a[0]["loss_tlm"]]


@pytest.fixture(scope="module")
def stopped_run(tiny, tmp_path_factory):
    """A run stopped after 2 of 4 steps with checkpoints step_1 and step_2 (a template: tests copy it)."""
    output_dir = tmp_path_factory.mktemp("stopped")
    train(geolocation_argv(tiny, output_dir, "--max-train-steps", 4, "--checkpointing-steps", 1,
                           "--stop-after-steps", 2))
    assert sorted(path.name for path in (output_dir / "checkpoints").iterdir()) == ["step_1", "step_2"]
    return output_dir


def _copy(stopped_run, tmp_path):
    shutil.copytree(stopped_run, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("changed, named", [
    (["--no-lora"], "hyperparameters.lora: checkpoint True, this run False"),
    (["--seed", 1], "hyperparameters.seed: checkpoint 0, this run 1"),  # another few-shot draw
    (["--batch-size", 4], "hyperparameters.batch_size: checkpoint 8, this run 4"),
    (["--lora-learning-rate", 0.01], "hyperparameters.lora_learning_rate: checkpoint 0.0005, this run 0.01"),
    (["--objective", "classifier"], "hyperparameters.objective: checkpoint 'contrastgeo', this run 'classifier'"),
    (["--model-config", "tlm_fusion=sum"], "hyperparameters.model_config.tlm_fusion: checkpoint 'cross_attention', "
                                           "this run 'sum'"),
])
def test_a_checkpoint_of_another_configuration_is_refused_naming_the_difference(tiny, stopped_run, tmp_path, changed,
                                                                                named):
    output_dir = _copy(stopped_run, tmp_path)
    argv = geolocation_argv(tiny, output_dir, "--max-train-steps", 4, *changed, "--resume-from-checkpoint", "latest")
    with pytest.raises(ValueError, match="step_2: that checkpoint was written by a run with different settings \\("
                                         + named.replace("(", "\\(").replace(".", "\\.")):
        train(argv)
    assert not (output_dir / "model.safetensors").exists()


def test_a_checkpoint_of_other_training_data_is_refused_and_the_same_file_elsewhere_resumes(tiny, stopped_run,
                                                                                              tmp_path):
    output_dir = _copy(stopped_run, tmp_path)
    pool = Path(tiny["pool"])
    rows = pd.read_csv(pool)
    for folder in ("edited", "moved"):
        (tmp_path / folder).mkdir()
    rows.to_csv(tmp_path / "moved" / pool.name, index=False)
    assert (tmp_path / "moved" / pool.name).read_bytes() == pool.read_bytes()
    rows.loc[0, "text"] += " edited"  # one post differs: another training set under the same name
    rows.to_csv(tmp_path / "edited" / pool.name, index=False)
    argv = geolocation_argv(tiny, output_dir, "--max-train-steps", 4, "--resume-from-checkpoint", "latest")
    argv[argv.index("--train-file") + 1] = tmp_path / "edited" / pool.name
    with pytest.raises(ValueError, match="different settings \\(data\\.train_file\\.bytes: .*data\\.train_file\\.sha256"):
        train(argv)
    argv[argv.index("--train-file") + 1] = tmp_path / "moved" / pool.name
    assert train(argv) and json.loads((output_dir / "train_results.json").read_text())["train_steps"] == 4


def test_a_resume_reads_no_pickle_beyond_weights_only(tiny, stopped_run, tmp_path, monkeypatch):
    output_dir = _copy(stopped_run, tmp_path)
    checkpoint_files = {path.name for path in (output_dir / "checkpoints" / "step_2").iterdir()}
    assert {"model.safetensors", "training_progress.json", "checkpoint_run.json"} <= checkpoint_files
    assert not any(name.startswith("custom_checkpoint") for name in checkpoint_files)
    torch_load, reads = torch.load, []

    def recording_load(*args, **kwargs):
        reads.append((str(args[0]), kwargs.get("weights_only")))
        return torch_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    train(geolocation_argv(tiny, output_dir, "--max-train-steps", 4, "--resume-from-checkpoint", "latest"))
    assert reads and all(weights_only is True for _, weights_only in reads), reads


def test_checkpoints_total_limit_keeps_the_newest(tiny, tmp_path):
    train(geolocation_argv(tiny, tmp_path / "run", "--checkpointing-steps", 1, "--checkpoints-total-limit", 2))
    assert sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_3", "step_4"]


def test_a_setting_that_acts_after_training_may_change_on_resume(tiny, stopped_run, tmp_path):
    output_dir = _copy(stopped_run, tmp_path)
    train(geolocation_argv(tiny, output_dir, "--max-train-steps", 4, "--eval-batch-size", 5,
                           "--resume-from-checkpoint", "latest"))
    assert json.loads((output_dir / "train_results.json").read_text())["train_steps"] == 4


def test_a_checkpoint_of_another_number_of_processes_is_refused(tiny, stopped_run):
    from contrastgeo.training.checkpoints import check_checkpoint_matches

    checkpoint = stopped_run / "checkpoints" / "step_2"
    saved = json.loads((checkpoint / "checkpoint_run.json").read_text())
    assert saved["num_processes"] == 1 and saved["completed_steps"] == 2
    check_checkpoint_matches(checkpoint, {key: saved[key] for key in ("hyperparameters", "num_processes",
                                                                      "mixed_precision")})
    with pytest.raises(ValueError, match="num_processes: checkpoint 1, this run 2"):
        check_checkpoint_matches(checkpoint, {**saved, "num_processes": 2})


def test_latest_skips_an_incomplete_checkpoint_and_an_incomplete_path_is_refused_by_name(tiny, stopped_run, tmp_path):
    from contrastgeo.training.checkpoints import resolve_checkpoint

    output_dir = _copy(stopped_run, tmp_path)
    checkpoints = output_dir / "checkpoints"
    # A session killed while Accelerate wrote step_3: its model, nothing else.
    (checkpoints / "step_3").mkdir()
    shutil.copy(checkpoints / "step_2" / "model.safetensors", checkpoints / "step_3")
    assert resolve_checkpoint("latest", output_dir) == checkpoints / "step_2"
    # Without its RNG states Accelerate resumes anyway (it logs "Could not load random states") and the run differs.
    (checkpoints / "step_2" / "random_states_0.pkl").unlink()
    assert resolve_checkpoint("latest", output_dir) == checkpoints / "step_1"
    with pytest.raises(ValueError, match="step_2: not a complete train.py checkpoint of a 1-process run, it lacks "
                                         "random_states_0.pkl"):
        resolve_checkpoint(str(checkpoints / "step_2"), output_dir)
    with pytest.raises(ValueError, match="lacks random_states_1.pkl"):
        resolve_checkpoint(str(checkpoints / "step_1"), output_dir, num_processes=2)
    with pytest.raises(ValueError, match="run: not a complete train.py checkpoint .* lacks model.safetensors, "
                                         "optimizer.bin"):
        resolve_checkpoint(str(output_dir), output_dir)  # the output folder, not one of its checkpoints

    train(geolocation_argv(tiny, output_dir, "--max-train-steps", 4, "--resume-from-checkpoint", "latest"))
    assert json.loads((output_dir / "train_results.json").read_text())["session_steps"] == 3  # from step 1


def test_a_session_killed_while_saving_leaves_no_checkpoint_for_latest(tiny, tmp_path, monkeypatch):
    from accelerate import Accelerator

    from contrastgeo.training.checkpoints import resolve_checkpoint

    class Killed(Exception):
        pass

    save_state = Accelerator.save_state
    saves = []

    def killed_after_the_second_save(self, *args, **kwargs):  # Accelerate's files written, the progress not yet
        saves.append(args)
        save_state(self, *args, **kwargs)
        if len(saves) == 2:
            raise Killed

    monkeypatch.setattr(Accelerator, "save_state", killed_after_the_second_save)
    with pytest.raises(Killed):
        train(geolocation_argv(tiny, tmp_path, "--max-train-steps", 4, "--checkpointing-steps", 1))
    monkeypatch.undo()
    assert not (tmp_path / "checkpoints" / "step_2").exists()
    assert resolve_checkpoint("latest", tmp_path) == tmp_path / "checkpoints" / "step_1"
    # The next session overwrites the half-written folder when it saves step 2 again.
    train(geolocation_argv(tiny, tmp_path, "--max-train-steps", 4, "--checkpointing-steps", 1,
                           "--resume-from-checkpoint", "latest"))
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == [f"step_{n}" for n in (1, 2, 3, 4)]
