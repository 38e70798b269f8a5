"""The run-folder layout and its readers: damaged run folders (what a crash, a full disk or a hand
edit leaves) are listed as damaged and never stop the run list, the watcher, the pickers of any
tab, `create_app()` or `workbench runs`; progress is read incrementally; a CLI run's reused pid is
not taken for the run; the package has no import cycles and the controller loads no torch."""

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench import cli
from workbench.events import EventWriter
from workbench.jobs import DAMAGED, JobController
from workbench.progress import RunMonitor
from workbench.runs import locate, read_config_checked, resolve_run

ROOT = Path(__file__).resolve().parent.parent

GOOD_CONFIG = "model_name_or_path: m\ndataset: identity\nstage: sft\nfinetuning_type: lora\n"


def events_file(run_dir: Path, *lines: bytes) -> None:
    (run_dir / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def good_events(run_dir: Path, end: bool = True) -> None:
    writer = EventWriter(run_dir)
    writer.max_steps = 4
    writer.emit("phase", phase="preparing_data", pid=os.getpid())
    writer.emit("start", step=0)
    for step in (1, 2):
        writer.step = step
        writer.emit("log", loss=1.0 / step)
    if end:
        writer.emit("end", final="final")


def run_folder(
    saves: Path, name: str, config: str | None = GOOD_CONFIG, job: bytes | None = None, events: bool = True
) -> Path:
    run_dir = saves / name
    run_dir.mkdir()
    if config is not None:
        (run_dir / "config.yaml").write_text(config)
    if job is not None:
        (run_dir / "job.json").write_bytes(job)
    if events:
        good_events(run_dir)
    return run_dir


def folders(saves: Path) -> list[str]:
    return sorted(p.name for p in saves.iterdir() if p.is_dir() and not p.name.startswith("."))


def job_json(**fields) -> bytes:
    return json.dumps({"status": "finished", "created": 1.0, **fields}).encode()


@pytest.fixture()
def corpus(saves) -> Path:
    """One folder per kind of damage, beside a healthy run with a result (listed by every picker)."""
    healthy = run_folder(saves, "healthy", job=job_json(started=1.0, ended=5.0))
    (healthy / "final").mkdir()
    (healthy / "final" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (healthy / "checkpoint-2").mkdir()
    (healthy / "checkpoint-2" / "trainer_state.json").write_text("{}")
    run_folder(saves, "job-list", job=b"[]")
    run_folder(saves, "job-null", job=b"null")
    run_folder(saves, "job-not-utf8", job=b'{"status": "fin\xff\xfe"}')
    run_folder(saves, "job-not-json", job=b'{"status": ')
    run_folder(saves, "job-no-status", job=b'{"created": 1.0}')
    run_folder(saves, "job-mistyped", job=job_json(status="running", pid="1234", created="yesterday"))
    run_folder(saves, "job-bad-status", job=job_json(status=7))
    run_folder(saves, "job-bad-command", job=job_json(command=[1, 2]))
    folder = run_folder(saves, "job-folder")
    (folder / "job.json").mkdir()
    run_folder(saves, "job-other-id", job=job_json(run_id="../../../etc"))
    bad_events = run_folder(saves, "events-damaged", events=False)
    events_file(
        bad_events,
        b"[1, 2]",
        b'"text"',
        b"42",
        b"null",
        b'{"type": "log", "loss": 3.0}',
        b'{"type": "log", "step": "two", "time": 1}',
        b'{"step": 1, "time": 1}',
        b'{"type": "log", "step": 1, "time": 1, "loss": "high"}',
        b"\xff\xfe not utf-8",
        b"{broken",
        b'{"type": "phase", "phase": ["x"], "step": 0, "time": 2}',
        b'{"type": "log", "step": 2, "max_steps": "ten", "time": 3, "loss": 0.5}',
    )
    run_folder(saves, "config-not-yaml", config="stage: [sft\n  : :")
    run_folder(saves, "config-a-list", config="- stage\n- sft\n")
    run_folder(saves, "config-a-number", config="42\n")
    folder = run_folder(saves, "config-folder", config=None)
    (folder / "config.yaml").mkdir()
    run_folder(saves, "config-not-utf8", config=None)
    (saves / "config-not-utf8" / "config.yaml").write_bytes(b"stage: \xff\n")
    return saves


DAMAGED_RUNS = {
    "job-list": "job.json is not an object",
    "job-null": "job.json is not an object",
    "job-not-utf8": "job.json is not UTF-8",
    "job-not-json": "job.json is not valid JSON",
    "job-no-status": "job.json has no status",
    "job-mistyped": "job.json: created has the wrong type (str)",
    "job-bad-status": "job.json: status has the wrong type (int)",
    "job-bad-command": "job.json: command is not a list of strings",
    "job-folder": "job.json is a folder",
    "config-not-yaml": "config.yaml is not valid YAML",
    "config-a-list": "config.yaml is not a mapping",
    "config-a-number": "config.yaml is not a mapping",
    "config-folder": "config.yaml is a folder",
    "config-not-utf8": "config.yaml is not UTF-8",
}


def test_the_run_list_shows_each_damaged_run_by_its_folder_name_and_what_is_wrong(corpus):
    controller = JobController(corpus)
    jobs = controller.jobs()
    assert sorted(j.run_id for j in jobs) == folders(corpus)  # every run, each once, by its folder name
    assert controller.run_ids() == [j.run_id for j in jobs]
    rows = {row["run"]: row for row in controller.summaries()}
    for name, problem in DAMAGED_RUNS.items():
        assert rows[name]["status"] == DAMAGED, name
        assert problem in rows[name]["damaged"], (name, rows[name]["damaged"])
    assert rows["healthy"]["status"] == "finished" and rows["healthy"]["damaged"] is None
    assert rows["healthy"]["step"] == 2 and rows["healthy"]["last_loss"] == 0.5
    assert rows["healthy"]["duration"] == 4.0
    # the folder name wins over a run_id written inside job.json
    assert rows["job-other-id"]["status"] == "finished" and controller.job("job-other-id").run_id == "job-other-id"
    # damaged events lines are left out, the good ones count
    assert rows["events-damaged"]["damaged"] is None
    assert rows["events-damaged"]["step"] == 2 and rows["events-damaged"]["last_loss"] == 0.5
    assert all("etc" not in json.dumps(row) for row in rows.values())


def test_the_watcher_and_progress_survive_every_damaged_run(corpus):
    controller = JobController(corpus)
    controller.tick()
    controller.tick()
    for name in folders(corpus):
        monitor = RunMonitor(corpus / name)
        monitor.update()
        assert monitor.step in (0, 2)
    damaged = RunMonitor(corpus / "events-damaged")
    damaged.update()
    assert damaged.skipped_lines == 9 and damaged.last_loss() == 0.5 and damaged.step == 2
    # a damaged job is never started, resumed or rewritten by the controller
    assert (corpus / "job-list" / "job.json").read_bytes() == b"[]"
    with pytest.raises(ValueError, match="damaged"):
        controller.resume("job-null")
    assert "damaged" in controller.abort("job-mistyped")


def test_the_pickers_of_every_tab_and_the_train_tab_views_survive_damaged_runs(corpus):
    from workbench.chat import list_targets
    from workbench.experiments import config_diff, loss_curves
    from workbench.ui.context import UIContext
    from workbench.ui.export_tab import finished_runs
    from workbench.ui.i18n import Localizer
    from workbench.ui.train_tab import active_run, job_message, render_progress, run_choices, run_details, runs_frame

    ctx = UIContext(
        loc=Localizer("en"), controller=JobController(corpus), engine=None, saves=corpus, dataset_dir="data"
    )
    names = folders(corpus)
    for lang in ("en", "zh"):
        table = runs_frame(ctx, lang)
        assert sorted(table.iloc[:, 0]) == names
    table = runs_frame(ctx, "en").set_index("Run")
    assert table.loc["job-null", "Status"].startswith("Damaged: job.json is not an object")
    assert table.loc["config-a-list", "Status"].startswith("Damaged: config.yaml is not a mapping")
    assert sorted(run_choices(ctx)) == names
    assert active_run(ctx) is None
    for name in names:
        run_details(ctx, name, "en")
        job = ctx.controller.job(name)
        job_message(job, "en", corpus / name)
        html = render_progress(RunMonitor(corpus / name), "en", job)
        assert "etc" not in html
    assert "healthy" in list_targets(corpus) and "healthy/checkpoint-2" in list_targets(corpus)  # chat, eval
    assert finished_runs(ctx) == ["healthy"]  # export
    assert config_diff(corpus, names) is not None and loss_curves(corpus, names)  # experiments


def test_create_app_starts_with_damaged_runs_and_its_watcher_keeps_ticking(corpus):
    from workbench.ui.app import create_app

    controller = JobController(corpus)
    demo = create_app(saves=corpus, controller=controller)
    assert demo.wb_context.controller is controller
    ticks = []
    tick = controller.tick

    def counted_tick():
        tick()
        ticks.append(1)  # only a tick that raised nothing counts

    controller.tick = counted_tick
    controller.start_watcher(interval=0.01)
    try:
        deadline = time.monotonic() + 120
        while len(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        controller.stop_watcher()
    assert len(ticks) >= 3


def test_workbench_runs_lists_every_run_and_says_which_are_damaged(corpus, capsys):
    assert cli.main(["runs", "--saves", str(corpus)]) == 0
    text = capsys.readouterr().out
    for name, problem in DAMAGED_RUNS.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
        assert "damaged: " in line and problem in line, line
    healthy = next(ln for ln in text.splitlines() if ln.startswith("healthy "))
    assert "finished" in healthy and "sft/lora" in healthy and "identity" in healthy and "0.5000" in healthy
    assert cli.main(["runs", "--saves", str(corpus), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["run"] for r in rows) == folders(corpus)
    assert cli.main(["runs", "--saves", str(corpus / "nowhere")]) == 0
    assert "no runs" in capsys.readouterr().out


def test_progress_of_a_cli_run_is_read_incrementally(saves):
    run_dir = run_folder(saves, "cli-run")
    controller = JobController(saves)
    first = controller.monitor("cli-run")
    size = (run_dir / "events.jsonl").stat().st_size
    assert first._reader.offset == size
    controller.jobs()
    controller.summaries()
    again = controller.monitor("cli-run")
    assert again is first and again._reader.offset == size  # nothing read twice
    writer = EventWriter(run_dir)
    writer.step, writer.max_steps = 3, 4
    writer.emit("log", loss=0.25)
    row = controller.summaries()[0]
    assert row["step"] == 3 and row["last_loss"] == 0.25
    assert controller.monitor("cli-run") is first and first._reader.offset > size
    # a file replaced by a shorter one is read again from its start
    (run_dir / "events.jsonl").write_text("")
    good_events(run_dir, end=False)
    assert controller.monitor("cli-run").step == 2


def test_a_cli_run_whose_pid_was_reused_is_not_shown_running(saves):
    me = psutil.Process(os.getpid())
    live = run_folder(saves, "live", events=False)
    good_events(live, end=False)  # written by this process, after it started: running
    reused = run_folder(saves, "reused", events=False)
    writer = EventWriter(reused)
    # the process that wrote these events started long before the pid's present owner did
    event = {
        "type": "phase",
        "phase": "preparing_data",
        "pid": os.getpid(),
        "step": 0,
        "max_steps": 4,
        "time": me.create_time() - 3600,
    }
    (reused / "events.jsonl").write_text(json.dumps(event) + "\n")
    del writer
    status = {j.run_id: j.status for j in JobController(saves).jobs()}
    assert status == {"live": "running", "reused": "interrupted"}


def test_run_specs_resolve_in_one_place(saves, tmp_path):
    run_dir = run_folder(saves, "r1")
    (run_dir / "checkpoint-3").mkdir()
    assert resolve_run("r1", saves).folder == run_dir / "final"
    assert resolve_run("r1/checkpoint-3", saves).folder == run_dir / "checkpoint-3"
    for bad in ("", "..", "../r1", "r1/../../x", "r1/final/x", "r1/checkpoint-x", "nope", ".hidden"):
        with pytest.raises(ValueError, match="no such run"):
            resolve_run(bad, saves)
    assert locate(str(run_dir)) == (saves.resolve(), "r1")
    assert locate(str(run_dir / "checkpoint-3")) == (saves.resolve(), "r1/checkpoint-3")
    assert locate("r1", saves) == (saves, "r1")
    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert locate(str(adapter)) == (tmp_path.resolve(), "my-adapter")
    assert read_config_checked(run_dir)[0]["dataset"] == "identity"


def test_the_job_controller_imports_no_torch_and_the_package_has_no_import_cycles():
    code = "import sys, workbench.jobs, workbench.runs; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
    assert import_cycles() == []


def import_cycles() -> list[list[str]]:
    """Cycles among the package's modules, counting imports inside functions too."""
    deps = {}
    for path in (ROOT / "workbench").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                found |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        deps[name] = found
    deps = {m: {d for d in found if d in deps and d != m and not m.startswith(d + ".")} for m, found in deps.items()}
    cycles = []

    def visit(module, stack):
        for dep in deps[module]:
            if dep in stack:
                cycle = stack[stack.index(dep) :]
                if sorted(cycle) not in [sorted(c) for c in cycles]:
                    cycles.append(cycle)
            elif len(stack) < 10:
                visit(dep, stack + [dep])

    for module in deps:
        visit(module, [module])
    return cycles
