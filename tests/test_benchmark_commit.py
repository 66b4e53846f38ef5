"""The commit a benchmark record carries: "+dirty" for uncommitted code, never for the run's own results."""

import shutil
import subprocess

import pytest

from contrastgeo.benchmarking.records import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def _git(repo, *arguments):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           *arguments], check=True, capture_output=True, text=True).stdout.strip()


OUTPUTS = ("benchmarks/results.json", "benchmarks/RESULTS.md", "benchmarks/HEADLINE.md")


@pytest.fixture()
def repo(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "results.json").write_text("[]")
    (tmp_path / "benchmarks" / "run_benchmark.py").write_text("print('run')\n")
    (tmp_path / "train.py").write_text("print('train')\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_results_written_by_the_run_leave_the_commit_clean(repo):
    head = _git(repo, "rev-parse", "HEAD")
    outputs = [repo / name for name in OUTPUTS]
    assert git_commit(repo, output_files=outputs) == head
    (repo / "benchmarks" / "results.json").write_text('[{"task": "t"}]')
    (repo / "benchmarks" / "RESULTS.md").write_text("# results\n")
    assert git_commit(repo, output_files=outputs) == head
    assert git_commit(repo) == head + "+dirty"  # without output_files every change counts


@pytest.mark.parametrize("change", ["train.py", "benchmarks/run_benchmark.py", "new_method.py",
                                    "benchmarks/new_script.py"])
def test_code_changes_beside_the_results_mark_the_commit_dirty(repo, change):
    (repo / change).write_text("x = 1\n")  # an edit of a tracked file, or a new untracked one
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo, output_files=[repo / name for name in OUTPUTS]) == head + "+dirty"
    # output files outside the repository exclude nothing
    assert git_commit(repo, output_files=[repo.parent / "elsewhere" / "results.json"]) == head + "+dirty"


def test_no_repository_reads_unknown(tmp_path):
    assert git_commit(tmp_path / "not-a-repo") == "unknown"
