"""The commit a benchmark record carries: "+dirty" for uncommitted code, never for the run's own results."""

import shutil
import subprocess

import pytest

from contrastgeo.benchmarking.records import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def _git(repo, *arguments):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           *arguments], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "results.json").write_text("[]")
    (tmp_path / "train.py").write_text("print('train')\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_results_written_by_the_run_leave_the_commit_clean(repo):
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo, outputs_dir=repo / "benchmarks") == head
    (repo / "benchmarks" / "results.json").write_text('[{"task": "t"}]')
    (repo / "benchmarks" / "RESULTS.md").write_text("# results\n")
    assert git_commit(repo, outputs_dir=repo / "benchmarks") == head
    assert git_commit(repo) == head + "+dirty"  # without outputs_dir every change counts


@pytest.mark.parametrize("change", ["edit", "untracked"])
def test_code_changes_outside_the_results_mark_the_commit_dirty(repo, change):
    if change == "edit":
        (repo / "train.py").write_text("print('changed')\n")
    else:
        (repo / "new_method.py").write_text("x = 1\n")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo, outputs_dir=repo / "benchmarks") == head + "+dirty"
    # a results directory at the repository root or outside it excludes nothing
    assert git_commit(repo, outputs_dir=repo) == head + "+dirty"
    assert git_commit(repo, outputs_dir=repo.parent / "elsewhere") == head + "+dirty"


def test_no_repository_reads_unknown(tmp_path):
    assert git_commit(tmp_path / "not-a-repo") == "unknown"
