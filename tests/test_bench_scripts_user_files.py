"""benchmarks/user_files.py: a model folder is reused only for the run that trained it, and settings that cannot
make the check are refused."""

import json
from pathlib import Path

import pytest

from tests.benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def user_files():
    return load_benchmark_script("user_files")


def test_a_model_trained_with_other_flags_or_files_is_trained_again(user_files, tmp_path, monkeypatch):
    # The whole-file model folder is `<task>-share/model` whatever --pool-share and --max-train-steps: a model of
    # 300 steps on a 40% share was reused by a run asking for 50 steps on 20%, and reported as such.
    trained, real_run = [], user_files.subprocess.run

    def fake_train_py(command, **kwargs):
        if not str(command[1]).endswith("train.py"):
            return real_run(command, **kwargs)  # git, for the commit
        model_dir = Path(command[command.index("--output-dir") + 1])
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "eval_results.json").write_text(json.dumps({"top1": 0.5}))
        trained.append(command[2:command.index("--output-dir")])

    monkeypatch.setattr(user_files.subprocess, "run", fake_train_py)
    pool = tmp_path / "pool.csv"
    pool.write_text("text,label,latitude,longitude\nhi,A,1.0,2.0\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "eval_results.json").write_text(json.dumps({"top1": 0.9}))  # an earlier run's, settings unknown

    result = user_files.train(model_dir, "--train-file", pool, "--max-train-steps", 50)
    assert trained == [["--train-file", str(pool), "--max-train-steps", "50"]]
    assert result[0] == model_dir
    user_files.train(model_dir, "--train-file", pool, "--max-train-steps", 50)
    assert len(trained) == 1  # the same flags and files: reused (an interrupted run goes on)
    user_files.train(model_dir, "--train-file", pool, "--max-train-steps", 300)
    assert len(trained) == 2
    pool.write_text("text,label,latitude,longitude\nhello,B,3.0,4.0\n")  # the same path, other posts
    _, commit = user_files.train(model_dir, "--train-file", pool, "--max-train-steps", 300)
    assert len(trained) == 3 and commit == json.loads((model_dir / user_files.RUN_RECORD).read_text())["commit"]


@pytest.mark.parametrize("flags, message", [
    (["--pool-share", "-0.4"], "--pool-share must be in (0, 1], got -0.4"),  # trained on 60%, reported "-40%"
    (["--pool-share", "0"], "--pool-share must be in (0, 1], got 0.0"),
    (["--pool-share", "1.5"], "--pool-share must be in (0, 1], got 1.5"),  # the whole pool, reported "150%"
    (["--shots", "0"], "--shots must be at least 1, got 0"),
    (["--max-train-steps", "0"], "--max-train-steps must be at least 1, got 0"),
    (["--seeds", "0", "0"], "--seeds must be distinct integers >= 0, got [0, 0]"),  # one model counted twice
])
def test_settings_that_cannot_make_the_check_are_refused(user_files, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        user_files.parse_args(["--work-dir", str(tmp_path), *flags])
    assert message in capsys.readouterr().err


def test_the_report_names_the_commit_each_model_was_trained_at():
    from contrastgeo.benchmarking.user_files import user_files_report

    report = user_files_report(["## A section\n"], "--work-dir W", "abc", {"country/k16-seed0": "def+dirty"})
    assert "at commit `abc`" in report and "Models trained at: `country/k16-seed0` `def+dirty`." in report
