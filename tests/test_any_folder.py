"""The workbench works from any working folder, and refuses a run it can tell will fail before
the run's folder exists: from the command line and from Start in the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.data.registry import SHIPPED_DIR, dataset_folders, load_registry

from conftest import ROOT

SHIPPED = ["date_format", "identity", "preference", "pretrain_text", "sentiment"]


@pytest.fixture()
def elsewhere(tmp_path, monkeypatch):
    """An empty working folder outside the repository (and nothing else on the way)."""
    folder = tmp_path / "my-project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert ROOT not in folder.parents
    return folder


def workbench(*args: str, cwd: Path):
    """`python -m workbench ...` in cwd, the worktree importable but not the working folder."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("WORKBENCH_SAVES", None)
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], cwd=cwd, text=True, capture_output=True, timeout=600, env=env
    )


def config(folder: Path, model: Path, **keys) -> Path:
    data = {
        "model_name_or_path": str(model),
        "dataset": "identity",
        "max_steps": 1,
        "logging_steps": 1,
        "save_steps": 100,
        "per_device_train_batch_size": 2,
        "cutoff_len": 64,
        "max_samples": 8,
        **keys,
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_shipped_datasets_resolve_from_any_folder(elsewhere):
    assert set(SHIPPED) <= set(load_registry())
    assert dataset_folders() == [SHIPPED_DIR]  # no ./data here: only the package's own folder
    entry = load_registry()["identity"]
    assert entry.path(None) == SHIPPED_DIR / "identity.json" and entry.path(None).is_file()
    assert (SHIPPED_DIR / "general_reference.json").is_file()  # the forgetting check's text


def test_a_users_entry_replaces_a_shipped_one_with_a_note(elsewhere, tmp_path):
    from workbench.config import RunConfig
    from workbench.preflight import notes

    (elsewhere / "data").mkdir()
    (elsewhere / "data" / "mine.json").write_text(json.dumps([{"instruction": "hi", "output": "hello"}] * 4))
    (elsewhere / "data" / "dataset_info.json").write_text(json.dumps({"identity": {"file_name": "mine.json"}}))
    other = tmp_path / "other"
    other.mkdir()
    (other / "own.json").write_text(json.dumps([{"instruction": "a", "output": "b"}] * 4))
    (other / "dataset_info.json").write_text(json.dumps({"own": {"file_name": "own.json"}}))
    registry = load_registry(str(other))
    assert registry["identity"].path(None) == (elsewhere / "data" / "mine.json").absolute()
    assert registry["identity"].replaces == SHIPPED_DIR / "dataset_info.json"
    assert registry["own"].source() == str(other) and registry["sentiment"].source() == str(SHIPPED_DIR)
    assert dataset_folders(str(other)) == [SHIPPED_DIR, (elsewhere / "data").absolute(), other]
    assert "replaces" in notes(RunConfig(dataset="identity"))[0]


def test_cli_lists_inspects_and_trains_shipped_data_from_elsewhere(elsewhere, tiny_model_dir):
    result = workbench("data", "inspect", "date_format", "--model", str(tiny_model_dir), "--json", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["splits"]["test"] == 60  # its held-out test file came along
    result = workbench("train", str(config(elsewhere, tiny_model_dir)), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    runs = list((elsewhere / "saves").iterdir())  # ./saves of the working folder, as the README says
    assert len(runs) == 1 and (runs[0] / "final" / "adapter_model.safetensors").is_file()


CANNOT_RUN = {
    "a typo in a dataset name": ({"dataset": "identiy"}, "did you mean 'identity'"),
    "a registered file that is missing": ({"dataset": "gone"}, "file not found"),
    "a dataset without its stage's columns": ({"stage": "dpo"}, "'chosen' and 'rejected'"),
    "an output folder that cannot be written": ({"output_dir": "/proc/workbench/run"}, "not writable"),
    "an output folder below a file": ({"output_dir": "notes.txt/run"}, "is a file, not a folder"),
    "a hub id with no hub to reach": ({"model_name_or_path": "someone/not-here"}, "cannot be reached"),
}


def prepare_mistakes(folder: Path) -> None:
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "dataset_info.json").write_text(json.dumps({"gone": {"file_name": "gone.json"}}))
    (folder / "notes.txt").write_text("not a folder")


@pytest.mark.parametrize("mistake", list(CANNOT_RUN))
def test_cli_refuses_before_a_run_folder_exists(elsewhere, tiny_model_dir, mistake):
    keys, message = CANNOT_RUN[mistake]
    prepare_mistakes(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    result = workbench("train", str(config(elsewhere, tiny_model_dir, **keys)), cwd=elsewhere)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one readable line
    assert sorted(p.name for p in elsewhere.iterdir()) == before + ["run.yaml"]  # no saves/, no run folder


def test_cli_bad_config_exits_2_and_debug_shows_the_traceback(elsewhere, tiny_model_dir):
    result = workbench("train", str(config(elsewhere, tiny_model_dir, learning_rate=-1)), cwd=elsewhere)
    assert result.returncode == 2 and "learning_rate" in result.stderr and "Traceback" not in result.stderr
    # a failure only training can meet ends the run as failed, in one line; --debug adds the traceback
    path = config(elsewhere, tiny_model_dir, val_size=0, test_size=0, cutoff_len=8, stage="sft")
    quiet = workbench("train", str(path), cwd=elsewhere)
    loud = workbench("train", str(path), "--debug", cwd=elsewhere)
    assert quiet.returncode == loud.returncode == 1
    assert "no training example is left" in quiet.stderr and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr
    events = [
        json.loads(line)
        for run in (elsewhere / "saves").iterdir()
        for line in (run / "events.jsonl").read_text().splitlines()
    ]
    assert any(e["type"] == "error" and "no training example" in e["message"] for e in events)


def start_handler(app):
    ctx = app.wb_context
    start = next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == "on_start")

    def press(**values):
        data = {component: component.value for component in ctx.fields.values()}
        data[ctx.lang] = "en"
        for name, value in values.items():
            data[ctx.fields[name]] = value
        return start(data, None)

    return press


def test_the_page_lists_shipped_data_and_refuses_before_a_run_exists(elsewhere, tiny_model_dir):
    from workbench.ui.app import create_app, folders_text

    saves = elsewhere / "saves"
    # the tiny model lives in pytest's temp folder, outside the workspace
    app = create_app(saves=saves, allow_local_models=True)  # started in an empty folder: no ./data, no --dataset-dir
    ctx = app.wb_context
    assert set(SHIPPED) <= set(ctx.fields["dataset"].choices[i][0] for i in range(len(ctx.fields["dataset"].choices)))
    assert str(saves.absolute()) in folders_text(ctx, "en") and str(SHIPPED_DIR) in folders_text(ctx, "en")
    press = start_handler(app)
    prepare_mistakes(elsewhere)
    for mistake, (keys, message) in CANNOT_RUN.items():
        if "output" in mistake:
            continue  # the page always writes inside its saves folder
        keys = {"model_name_or_path": str(tiny_model_dir), **keys}
        text, _ = press(**{k: ([v] if k == "dataset" else v) for k, v in keys.items()})
        # refused by the pre-run check, or earlier by the form's rule that a dataset must be one
        # the server offers (a missing file is not offered), naming the dataset
        offered_only = (
            "cannot run" in text and "'dataset' names no dataset" in text and keys.get("dataset", "?") in text
        )
        assert ("cannot start" in text and message in text) or offered_only, (mistake, text)
        assert not saves.exists() or not any(saves.iterdir()), mistake  # no run folder, no queue entry
    assert ctx.controller.jobs() == []


def test_the_page_refuses_an_unwritable_saves_folder(elsewhere, tiny_model_dir):
    from workbench.ui.app import create_app

    saves = elsewhere / "saves"
    app = create_app(saves=saves, allow_local_models=True)
    saves.rmdir()
    saves.write_text("the runs folder was replaced by a file")  # root ignores permission bits
    text, _ = start_handler(app)(model_name_or_path=str(tiny_model_dir))
    assert "cannot start" in text and "is a file, not a folder" in text


def test_a_disk_without_room_for_a_checkpoint_is_refused(elsewhere, tiny_model_dir, monkeypatch):
    from workbench import preflight
    from workbench.config import RunConfig

    cfg = RunConfig(model_name_or_path=str(tiny_model_dir), finetuning_type="full")
    assert preflight.output_problems(cfg) == []
    assert preflight.checkpoint_bytes(cfg) >= 3 * preflight.model_weight_bytes(str(tiny_model_dir)) > 0
    monkeypatch.setattr(preflight, "checkpoint_bytes", lambda cfg: 2**62)
    [problem] = preflight.output_problems(cfg)
    assert problem.startswith("not enough disk space for a checkpoint")


def test_the_page_starts_a_shipped_dataset_run_from_elsewhere(elsewhere, tiny_model_dir):
    from workbench.jobs import FINAL
    from workbench.ui.app import create_app

    from browser import wait_until

    app = create_app(saves=elsewhere / "saves", allow_local_models=True)
    ctx = app.wb_context
    text, _ = start_handler(app)(
        model_name_or_path=str(tiny_model_dir), max_steps=1, cutoff_len=64, per_device_train_batch_size=2
    )
    assert "cannot start" not in text, text
    [job] = ctx.controller.jobs()

    def ended():
        ctx.controller.tick()
        return ctx.controller.job(job.run_id).status in FINAL

    wait_until(ended, timeout=300, what="the run to end")
    assert ctx.controller.job(job.run_id).status == "finished", (
        elsewhere / "saves" / job.run_id / "train.log"
    ).read_text()


def test_every_shipped_file_is_declared_package_data():
    """A non-editable install (`pip install .`, the Docker image) carries every shipped file."""
    import fnmatch

    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    declared = patterns["workbench.data"]
    files = [p.relative_to(SHIPPED_DIR.parent).as_posix() for p in SHIPPED_DIR.iterdir() if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pattern) for pattern in declared) for f in files), files
    registry = json.loads((SHIPPED_DIR / "dataset_info.json").read_text())
    named = {e[k] for e in registry.values() for k in ("file_name", "test_file_name") if k in e}
    assert named <= {Path(f).name for f in files}
