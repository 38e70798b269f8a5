"""What the Train tab shows about runs, without a browser: the abort stage in words, Resume
offered when there is a checkpoint to resume, the live run found after a restart, the command
that repeats a run, and Save/Load config round trips."""

import time

from workbench.config import from_dict, load_config
from workbench.events import EventWriter
from workbench.jobs import Job, JobController
from workbench.progress import RunMonitor
from workbench.ui.context import UIContext
from workbench.ui.i18n import Localizer
from workbench.ui.train_tab import active_run, render_progress, run_details, runs_frame, save_form_config


def make_ctx(saves):
    return UIContext(loc=Localizer("en"), controller=JobController(saves), engine=None, saves=saves, dataset_dir="data")


def fake_run(saves, run_id, status, steps=0, checkpoint=False, **job):
    run_dir = saves / run_id
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model_name_or_path: m\ndataset: identity\nfinetuning_type: lora\n")
    writer = EventWriter(run_dir)
    writer.max_steps = 10
    writer.emit("phase", phase="training")
    for step in range(1, steps + 1):
        writer.step = step
        writer.emit("log", loss=2.0 / step, learning_rate=1e-3)
    if checkpoint:
        (run_dir / "checkpoint-2").mkdir()
        (run_dir / "checkpoint-2" / "trainer_state.json").write_text("{}")
    Job(run_id=run_id, status=status, started=time.time() - 5, **job).save(run_dir)
    return run_dir


def test_progress_says_which_abort_stage_is_under_way_and_offers_resume(saves):
    ctx = make_ctx(saves)
    stopping = fake_run(saves, "stopping", "stopping", steps=3, abort_stage="sigterm")
    html = render_progress(RunMonitor(stopping), "en", ctx.controller.job("stopping"))
    assert "SIGTERM sent" in html
    killed = fake_run(
        saves,
        "killed",
        "aborted",
        steps=3,
        checkpoint=True,
        abort_stage="sigkill",
        message="killed with SIGKILL: the process did not end after SIGTERM",
    )
    html = render_progress(RunMonitor(killed), "en", ctx.controller.job("killed"))
    assert "killed with SIGKILL" in html and "Press Resume" in html
    assert "进程未响应" in render_progress(
        RunMonitor(stopping), "zh", Job(run_id="s", status="stopping", abort_stage="sigkill")
    )
    failed = fake_run(saves, "failed", "failed", message="bad config: 'dataset' is empty")
    html = render_progress(RunMonitor(failed), "en", ctx.controller.job("failed"))
    assert "bad config: &#x27;dataset&#x27; is empty" in html and "Resume" not in html  # nothing to resume


def test_the_runs_table_lists_every_run_and_a_reopened_page_finds_the_live_one(saves):
    ctx = make_ctx(saves)
    fake_run(saves, "a-done", "finished", steps=4)
    fake_run(saves, "b-live", "running", steps=2)
    fake_run(saves, "c-waiting", "queued")
    assert active_run(ctx) == "b-live"
    table = runs_frame(ctx, "en")
    assert list(table["Run"]) == ["c-waiting", "b-live", "a-done"]
    assert list(table["Status"]) == ["Queued", "Running", "Finished"]
    assert table["Steps"][2] == "4/10" and table["Last loss"][2] == "0.5000"


def test_run_details_show_the_command_that_repeats_it(saves):
    ctx = make_ctx(saves)
    fake_run(saves, "r1", "finished", steps=1)
    command, config = run_details(ctx, "r1", "en")
    assert f"workbench train {saves / 'r1' / 'config.yaml'}" in command
    assert "dataset: identity" in config


def test_a_saved_config_loads_back_into_the_same_config(saves):
    ctx = make_ctx(saves)
    cfg = from_dict(
        {
            "model_name_or_path": "m",
            "dataset": "identity",
            "learning_rate": 3e-4,
            "max_steps": 12,
            "output_dir": "my run",
        }
    )
    path = save_form_config(ctx, cfg)
    assert path.parent == saves / "configs" and path.name == "my-run.yaml"
    assert load_config(path) == cfg
