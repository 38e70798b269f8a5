"""Train tab: the run form, Start/Abort/Resume, and the live view of any run.

The tab never trains: Start writes the run's config and hands it to the job controller, which
runs `python -m workbench.train` in its own process. A gr.Timer reads the selected run's new
events only, and redraws the charts only when points were added."""

from __future__ import annotations

import html
import time
from pathlib import Path, PurePath

import gradio as gr
import pandas as pd

from .. import locale
from ..config import FIELDS, ConfigError, load_config, save_config, to_yaml
from ..confine import ConfinementError, run_folder
from ..data import local_dataset_names
from ..jobs import tail_log
from ..progress import RunMonitor, format_duration
from ..runs import CONFIG_FILE, complete_checkpoints
from . import method_panel, rl_view
from .context import UIContext
from .form import config_from_values, control_value, field_control, workspace_problems

# fields placed in the tab's main rows; the rest go to the accordions by group
MAIN_ROWS = [
    ["dataset", "stage", "finetuning_type"],
    [
        "learning_rate",
        "num_train_epochs",
        "max_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "cutoff_len",
    ],
]
TOP_FIELDS = ["model_name_or_path", "template", "quantization_bit", "compute_type"]
ACCORDIONS = [
    ("train.lora", ["lora"]),
    ("train.method_options", ["method", "preference"]),
    ("train.rl_options", ["rl"]),
    ("train.advanced", ["train", "schedule", "data", "model", "system"]),
]


def build_model_row(ctx: UIContext) -> None:
    """The model choice sits above the tabs: every tab works on the same model."""
    from ..models import KNOWN_MODELS

    with gr.Row():
        for name in TOP_FIELDS:
            extra = {}
            if name == "model_name_or_path":
                extra = dict(choices=list(KNOWN_MODELS), allow_custom_value=True, scale=3)
                ctx.fields[name] = ctx.loc(
                    gr.Dropdown(
                        value=FIELDS[name].default, **ctx.loc.kwargs(f"field.{name}"), elem_id=f"field-{name}", **extra
                    ),
                    f"field.{name}",
                )
            else:
                ctx.fields[name] = field_control(name, ctx.loc)


def build(ctx: UIContext) -> None:
    loc = ctx.loc
    placed = set(TOP_FIELDS)
    with gr.Row():
        names = local_dataset_names(ctx.dataset_dir)
        ctx.fields["dataset"] = loc(
            gr.Dropdown(
                choices=names,
                value=["identity"] if "identity" in names else names[:1],
                multiselect=True,
                allow_custom_value=True,
                elem_id="field-dataset",
                **loc.kwargs("field.dataset"),
            ),
            "field.dataset",
        )
        for name in MAIN_ROWS[0][1:]:
            ctx.fields[name] = field_control(name, loc)
        # "Continue from": a finished run or checkpoint whose adapter this run keeps training
        ctx.fields["adapter_name_or_path"] = loc(
            gr.Dropdown(
                choices=continue_choices(ctx),
                value="",
                allow_custom_value=True,
                elem_id="field-adapter_name_or_path",
                **loc.kwargs("field.adapter_name_or_path"),
            ),
            "field.adapter_name_or_path",
        )
    with gr.Row():
        for name in MAIN_ROWS[1]:
            ctx.fields[name] = field_control(name, loc)
    placed |= {n for row in MAIN_ROWS for n in row} | {"adapter_name_or_path"}
    for title, groups in ACCORDIONS:
        with loc(gr.Accordion(loc.t(title), open=False), title):
            for group in groups:
                names = [n for n, f in FIELDS.items() if f.metadata["group"] == group and n not in placed]
                for chunk in range(0, len(names), 4):
                    with gr.Row():
                        for name in names[chunk : chunk + 4]:
                            ctx.fields[name] = (
                                dataset_dir_control(ctx) if name == "dataset_dir" else field_control(name, loc)
                            )
                placed |= set(names)
    missing = set(FIELDS) - set(ctx.fields)
    assert not missing, f"fields without a control: {missing}"
    method_panel.build(ctx)  # trainable share and memory estimate, before Start

    with gr.Row():
        preview_btn = loc(gr.Button(loc.t("train.preview"), elem_id="train-preview"), "train.preview")
        start_btn = loc(gr.Button(loc.t("train.start"), variant="primary", elem_id="train-start"), "train.start")
        abort_btn = loc(gr.Button(loc.t("train.abort"), variant="stop", elem_id="train-abort"), "train.abort")
        resume_btn = loc(gr.Button(loc.t("train.resume"), elem_id="train-resume"), "train.resume")
    with gr.Row():
        save_btn = loc(gr.Button(loc.t("jobs.save_config"), size="sm", elem_id="train-save-config"), "jobs.save_config")
        load_btn = loc(
            gr.UploadButton(
                loc.t("jobs.load_config"),
                size="sm",
                file_types=[".yaml", ".yml"],
                file_count="single",
                elem_id="train-load-config",
            ),
            "jobs.load_config",
        )
        saved_file = loc(
            gr.File(visible=False, interactive=False, elem_id="train-saved-config", **loc.kwargs("jobs.config_file")),
            "jobs.config_file",
        )
    message = gr.Markdown("", elem_id="train-message")
    command_box = loc(gr.Code(language="yaml", visible=False, elem_id="train-command"), "train.command")

    with gr.Row():
        run_picker = loc(
            gr.Dropdown(
                choices=run_choices(ctx),
                value=None,
                allow_custom_value=False,
                elem_id="train-run",
                scale=3,
                **loc.kwargs("train.run"),
            ),
            "train.run",
        )
        refresh_btn = loc(gr.Button(loc.t("train.refresh"), scale=1), "train.refresh")
    ctx.run_pickers.append(run_picker)
    progress = gr.HTML(render_progress(None, loc.lang), elem_id="train-progress")
    with gr.Row():
        loss_plot = loc(
            gr.LinePlot(
                empty_curve(),
                x="step",
                y="value",
                color="series",
                x_axis_format="d",
                tooltip=[TIME_COLUMN],
                elem_id="loss-chart",
                height=260,
                **loc.plot_kwargs("train.loss_chart"),
            ),
            "train.loss_chart",
        )
        lr_plot = loc(
            gr.LinePlot(
                empty_curve(),
                x="step",
                y="value",
                color="series",
                x_axis_format="d",
                y_axis_format="~e",
                tooltip=[TIME_COLUMN],
                elem_id="lr-chart",
                height=260,
                **loc.plot_kwargs("train.lr_chart"),
            ),
            "train.lr_chart",
        )
    smoothing = loc(
        gr.Slider(0.0, 0.95, value=0.0, step=0.05, elem_id="train-smoothing", **loc.kwargs("train.smoothing")),
        "train.smoothing",
    )
    # the training process's own figures (hw events in events.jsonl): nothing polls the machine
    with loc(gr.Accordion(loc.t("train.hardware"), open=True, elem_id="train-hardware"), "train.hardware"):
        with gr.Row():
            hw_plots = [
                loc(
                    gr.LinePlot(
                        empty_curve(),
                        x="seconds",
                        y="value",
                        color="series",
                        height=200,
                        elem_id=f"hw-{name}",
                        **loc.plot_kwargs(f"train.hw_{name}"),
                    ),
                    f"train.hw_{name}",
                )
                for name in HARDWARE_CHARTS
            ]
    rl_view.build(ctx, run_picker)  # grpo/rloo: reward, KL, completion length, sampled answers
    log_box = loc(
        gr.Textbox(
            lines=12, max_lines=12, autoscroll=True, interactive=False, elem_id="train-log", **loc.kwargs("train.log")
        ),
        "train.log",
    )
    with loc(gr.Accordion(loc.t("jobs.run_details"), open=False, elem_id="train-run-details"), "jobs.run_details"):
        run_command = gr.Markdown("", elem_id="train-run-command")
        run_config = loc(
            gr.Code(language="yaml", interactive=False, elem_id="train-run-config", **loc.kwargs("jobs.run_config")),
            "jobs.run_config",
        )
        use_config_btn = loc(
            gr.Button(loc.t("jobs.use_run_config"), size="sm", elem_id="train-use-config"), "jobs.use_run_config"
        )
    runs_table = loc(
        gr.Dataframe(
            value=runs_frame(ctx, loc.lang),
            interactive=False,
            elem_id="runs-table",
            wrap=True,
            **loc.kwargs("train.runs"),
        ),
        "train.runs",
    )
    monitor = gr.State(None)
    shown_table = gr.State(None)  # what the runs table shows, so an unchanged table is not resent
    shown_ids = gr.State(None)  # the run ids the picker offers, so it is updated only on change
    timer = gr.Timer(1.0)

    name_of = {component: name for name, component in ctx.fields.items()}
    form_inputs = set(ctx.fields.values()) | {ctx.lang}

    def read_config(data: dict):
        values = {name_of[c]: v for c, v in data.items() if c in name_of}
        return config_from_values(values, workspace=ctx.workspace)

    def on_preview(data: dict):
        lang = data[ctx.lang]
        try:
            cfg = read_config(data)
        except ConfigError as err:
            return gr.update(visible=False), error_md(lang, err)
        text = f"# {locale.t('train.command_comment', lang)}\n# workbench train run.yaml\n" + to_yaml(cfg)
        return gr.update(value=text, visible=True), ""

    def on_start(data: dict, request: gr.Request):
        lang = data[ctx.lang]
        try:
            cfg = read_config(data)
        except ConfigError as err:
            return error_md(lang, err), gr.update()
        # a typed output folder names the run; it always lands inside the saves folder
        wanted = safe_run_name(cfg.output_dir) if cfg.output_dir else None
        problems = check_before_start(cfg, ctx.saves / ctx.controller.unique_id(wanted or "new-run"))
        if problems:
            lines = "\n".join(f"- {p}" for p in problems)
            return f"⚠️ **{locale.t('train.cannot_start', lang)}**\n{lines}", gr.update()
        run_id = ctx.controller.submit(
            cfg,
            run_id=ctx.controller.unique_id(wanted) if wanted else None,
            owner=getattr(request, "session_hash", None),
        )
        job = ctx.controller.job(run_id)
        key = "train.started" if job and job.status == "running" else "train.queued"
        return locale.t(key, lang, run=run_id), gr.update(choices=run_choices(ctx), value=run_id)

    def on_abort(run_id, lang):
        if not run_id:
            return locale.t("train.pick_run", lang)
        try:
            return locale.render(ctx.controller.abort(run_id), lang)
        except ValueError as err:
            return f"⚠️ {locale.render_error(err, lang)}"

    def on_resume(run_id, lang):
        if not run_id:
            return locale.t("train.pick_run", lang), gr.update()
        try:
            ctx.controller.resume(run_id)
        except ValueError as err:
            return f"⚠️ {locale.render_error(err, lang)}", gr.update()
        return locale.t("train.resumed", lang, run=run_id), gr.update(choices=run_choices(ctx), value=run_id)

    def charts_of(mon: RunMonitor, lang: str, smooth: float) -> tuple:
        return (chart_update(loss_frame(mon, lang, smooth), mon), chart_update(lr_frame(mon, lang), mon))

    def on_select(run_id, lang, smooth):
        if run_id and not is_run_id(ctx, run_id):
            run_id = None
        if not run_id:
            return (
                None,
                render_progress(None, lang),
                empty_curve(),
                empty_curve(),
                "",
                "",
                "",
                *[empty_curve()] * len(HARDWARE_CHARTS),
            )
        mon = RunMonitor(ctx.saves / run_id)
        mon.update()
        command, config_text = run_details(ctx, run_id, lang)
        return (
            mon,
            render_progress(mon, lang, ctx.controller.job(run_id)),
            *charts_of(mon, lang, smooth),
            tail_log(ctx.saves / run_id),
            command,
            config_text,
            *hardware_frames(mon, lang),
        )

    def on_redraw(mon: RunMonitor | None, lang, smooth):
        """A new smoothing or language: the same points drawn again."""
        return charts_of(mon, lang, smooth) if mon is not None else (gr.skip(), gr.skip())

    def on_tick(run_id, mon: RunMonitor | None, shown_table, ids_shown, lang, smooth):
        """Once a second: new events of the selected run only; redraw what changed."""
        jobs = ctx.controller.jobs()  # one pass over the runs' job.json files per tick
        if run_id and not is_run_id(ctx, run_id):
            run_id = None
        table = runs_frame(ctx, lang, jobs)
        table_key = (lang, table.to_json())
        table_update = gr.skip() if table_key == shown_table else table
        ids = [job.run_id for job in reversed(jobs)]
        picker = gr.skip()
        if ids != ids_shown:  # a run started elsewhere (another browser, the CLI) appears
            picker = gr.update(choices=ids)
        if not run_id:
            # after a page load or a UI restart: show the run that is training, if any
            run_id = active_run(ctx, jobs)
            if run_id:
                picker = gr.update(choices=ids, value=run_id)
        if not run_id:
            return (
                None,
                render_progress(None, lang),
                gr.skip(),
                gr.skip(),
                gr.skip(),
                table_update,
                table_key,
                picker,
                ids,
                *[gr.skip()] * len(HARDWARE_CHARTS),
            )
        fresh = mon is None or mon.run_dir.name != run_id
        if fresh:
            mon = RunMonitor(ctx.saves / run_id)
        changed = mon.update()
        job = ctx.controller.job(run_id)
        redraw = mon.new_points or (changed and not mon.loss)
        charts = charts_of(mon, lang, smooth) if redraw else (gr.skip(), gr.skip())
        live = job is not None and job.status in ("running", "stopping")
        log = tail_log(ctx.saves / run_id) if changed or live else gr.skip()
        hardware = hardware_frames(mon, lang) if mon.new_hardware or fresh else [gr.skip()] * len(HARDWARE_CHARTS)
        return (
            mon,
            render_progress(mon, lang, job),
            charts[0],
            charts[1],
            log,
            table_update,
            table_key,
            picker,
            ids,
            *hardware,
        )

    field_names = list(ctx.fields)

    def form_updates(cfg) -> list:
        return [gr.update(value=control_value(name, getattr(cfg, name))) for name in field_names]

    def on_save_config(data: dict):
        lang = data[ctx.lang]
        try:
            cfg = read_config(data)
        except ConfigError as err:
            return gr.update(visible=False), error_md(lang, err)
        path = save_form_config(ctx, cfg)
        return gr.update(value=str(path), visible=True), locale.t("jobs.saved_config", lang, path=path)

    def on_load_config(upload, lang):
        name = PurePath(str(upload)).name if upload else ""
        try:
            cfg = load_config(upload)
            if ctx.workspace is not None and (problems := workspace_problems(ctx.workspace, cfg)):
                raise ConfigError(problems)
            if ctx.workspace is not None:
                cfg.dataset_dir = ctx.workspace.dataset_dir(cfg.dataset_dir)
        except ConfigError as err:
            return [gr.skip()] * len(field_names) + [
                locale.t("jobs.bad_file", lang, name=name, reason="; ".join(err.problems))
            ]
        return form_updates(cfg) + [locale.t("jobs.loaded_config", lang, name=name)]

    def on_use_run_config(run_id, lang):
        if not run_id:
            return [gr.skip()] * len(field_names) + [locale.t("train.pick_run", lang)]
        try:
            cfg = load_config(run_folder(ctx.saves, run_id) / CONFIG_FILE)
            cfg.output_dir = None
            if ctx.workspace is not None and (problems := workspace_problems(ctx.workspace, cfg)):
                raise ConfigError(problems)
        except (ConfigError, ConfinementError) as err:
            return [gr.skip()] * len(field_names) + [
                locale.t("jobs.bad_file", lang, name=run_id, reason="; ".join(getattr(err, "problems", [str(err)])))
            ]
        cfg.output_dir, cfg.resume_from_checkpoint = None, None  # Start makes a new run of it
        return form_updates(cfg) + [locale.t("jobs.loaded_config", lang, name=run_id)]

    preview_btn.click(on_preview, inputs=form_inputs, outputs=[command_box, message])
    start_btn.click(on_start, inputs=form_inputs, outputs=[message, run_picker])
    abort_btn.click(on_abort, inputs=[run_picker, ctx.lang], outputs=[message])
    resume_btn.click(on_resume, inputs=[run_picker, ctx.lang], outputs=[message, run_picker])
    run_picker.change(
        on_select,
        inputs=[run_picker, ctx.lang, smoothing],
        outputs=[monitor, progress, loss_plot, lr_plot, log_box, run_command, run_config, *hw_plots],
    )
    save_btn.click(on_save_config, inputs=form_inputs, outputs=[saved_file, message])
    load_btn.upload(
        on_load_config, inputs=[load_btn, ctx.lang], outputs=[ctx.fields[n] for n in field_names] + [message]
    )
    use_config_btn.click(
        on_use_run_config, inputs=[run_picker, ctx.lang], outputs=[ctx.fields[n] for n in field_names] + [message]
    )
    refresh_btn.click(
        lambda lang: (
            gr.update(choices=run_choices(ctx)),
            runs_frame(ctx, lang),
            gr.update(choices=continue_choices(ctx)),
        ),
        inputs=[ctx.lang],
        outputs=[run_picker, runs_table, ctx.fields["adapter_name_or_path"]],
    )
    smoothing.release(on_redraw, inputs=[monitor, ctx.lang, smoothing], outputs=[loss_plot, lr_plot])
    ctx.language_views.append((on_redraw, [monitor, ctx.lang, smoothing], [loss_plot, lr_plot]))
    timer.tick(
        on_tick,
        inputs=[run_picker, monitor, shown_table, shown_ids, ctx.lang, smoothing],
        outputs=[
            monitor,
            progress,
            loss_plot,
            lr_plot,
            log_box,
            runs_table,
            shown_table,
            run_picker,
            shown_ids,
            *hw_plots,
        ],
        show_progress="hidden",
    )


def is_run_id(ctx: UIContext, run_id) -> bool:
    """A name of a folder inside the runs folder (never a path that leads elsewhere)."""
    try:
        run_folder(ctx.saves, run_id)
    except ConfinementError:
        return False
    return "/" not in run_id


def dataset_dir_control(ctx: UIContext):
    """The run's dataset folder: a choice among the folders this server serves, not free text
    (runs read their datasets where the Data tab does)."""
    served = [str(d) for d in ctx.workspace.dataset_dirs] if ctx.workspace else [str(ctx.dataset_dir)]
    return ctx.loc(
        gr.Dropdown(
            choices=served,
            value=served[0],
            allow_custom_value=False,
            elem_id="field-dataset_dir",
            **ctx.loc.kwargs("field.dataset_dir"),
        ),
        "field.dataset_dir",
    )


# ---- rendering helpers (plain functions, tested without a browser) ----------------------
def run_choices(ctx: UIContext) -> list[str]:
    return list(reversed(ctx.controller.run_ids()))


def continue_choices(ctx: UIContext) -> list[tuple[str, str]]:
    """(label, folder) of every finished adapter run and its complete checkpoints, newest first;
    the first choice, empty, means a new adapter."""
    from ..train import FINAL_DIR, complete_checkpoints

    choices = [("", "")]
    for run_id in run_choices(ctx):
        run_dir = Path(ctx.saves) / run_id
        if (run_dir / FINAL_DIR / "adapter_config.json").is_file():
            choices.append((run_id, str((run_dir / FINAL_DIR).resolve())))
        for checkpoint in reversed(complete_checkpoints(run_dir)):
            if (checkpoint / "adapter_config.json").is_file():
                choices.append((f"{run_id}/{checkpoint.name}", str(checkpoint.resolve())))
    return choices


def active_run(ctx: UIContext, jobs=None) -> str | None:
    """The newest run that is training or stopping (what a reopened page should show)."""
    for job in reversed(jobs if jobs is not None else ctx.controller.jobs()):
        if job.status in ("running", "stopping"):
            return job.run_id
    return None


def run_details(ctx: UIContext, run_id: str, lang: str) -> tuple[str, str]:
    """The command that repeats the run, and its config.yaml."""
    try:
        config_text = (ctx.saves / run_id / CONFIG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing, or a folder in its place
        config_text = ""
    command = f"{locale.t('jobs.command', lang)}\n```\n{ctx.controller.equivalent_command(run_id)}\n```"
    others = other_nodes_text(ctx.saves / run_id / "config.yaml", lang)
    return command + others, config_text


def other_nodes_text(config_path: Path, lang: str) -> str:
    """For a run on several machines (this one is node 0): what to run on each of the others."""
    from ..config import load_config
    from ..distributed import other_node_commands

    try:
        cfg = load_config(config_path)
    except (ConfigError, OSError):
        return ""
    if cfg.nnodes <= 1:
        return ""
    lines = "\n".join(other_node_commands(cfg, config_path))
    return f"\n\n{locale.t('jobs.other_nodes', lang, n=cfg.nnodes - 1)}\n```\n{lines}\n```"


def check_before_start(cfg, run_dir: Path) -> list[str]:
    """The pre-run check; a crash of the check itself is reported, never raised into the page."""
    from ..preflight import check_run

    try:
        return check_run(cfg, run_dir)
    except Exception as err:  # noqa: BLE001 - the server stays up and says why
        return [f"the pre-run check failed: {type(err).__name__}: {err}"]


def save_form_config(ctx: UIContext, cfg) -> Path:
    """The form's config as a YAML file under saves/configs (kept, and offered for download)."""
    folder = ctx.saves / "configs"
    name = safe_run_name(cfg.output_dir) if cfg.output_dir else None
    path = folder / f"{name or time.strftime('%Y%m%d-%H%M%S')}.yaml"
    save_config(cfg, path)
    return path


def error_md(lang: str, err: ConfigError) -> str:
    lines = "\n".join(f"- {p}" for p in err.problems)
    return f"⚠️ **{locale.t('train.bad_config', lang)}**\n{lines}"


def empty_curve() -> None:
    # None, not an empty frame: a LinePlot first drawn from an empty frame with a colour
    # column never draws the lines of later updates (Gradio 6)
    return None


TIME_COLUMN = "🕒"  # shown on hover; a symbol reads the same in every language


def loss_frame(mon: RunMonitor, lang: str = "en", smoothing: float = 0.0) -> pd.DataFrame | None:
    """Training and evaluation loss on one chart, on integer steps; with smoothing > 0 an
    exponential moving average of the training loss is drawn beside it."""
    series = [(mon.loss, "chart.loss"), (mon.eval_loss, "chart.eval_loss")]
    if smoothing > 0 and mon.loss:
        series.append((smoothed(mon.loss, smoothing), "chart.smoothed"))
    return _curve_frame(mon, series, lang)


def lr_frame(mon: RunMonitor, lang: str = "en") -> pd.DataFrame | None:
    return _curve_frame(mon, [(mon.learning_rate, "chart.learning_rate")], lang)


def smoothed(points: list[tuple[int, float]], weight: float) -> list[tuple[int, float]]:
    """Exponential moving average, corrected for its start at zero (so the first point is kept)."""
    out, average = [], 0.0
    for n, (step, value) in enumerate(points, start=1):
        average = weight * average + (1 - weight) * value
        out.append((step, average / (1 - weight**n)))
    return out


def _curve_frame(mon: RunMonitor, series: list, lang: str) -> pd.DataFrame | None:
    rows = [
        (int(step), float(value), locale.t(key, lang), _clock(mon.point_times.get(step)))
        for points, key in series
        for step, value in points
    ]
    if not rows:
        return empty_curve()
    frame = pd.DataFrame(rows, columns=["step", "value", "series", TIME_COLUMN])
    frame["step"] = frame["step"].astype("int64")
    return frame


# chart → (hw event field, series label key) drawn on it; GPU series appear only with a GPU
HARDWARE_CHARTS = {
    "percent": [
        ("cpu_percent", "hw.cpu"),
        ("system_cpu_percent", "hw.system_cpu"),
        ("system_memory_percent", "hw.system_memory"),
        ("gpu_util_percent", "hw.gpu_util"),
    ],
    "memory": [
        ("process_memory_mb", "hw.process_memory"),
        ("system_memory_used_mb", "hw.system_memory"),
        ("gpu_memory_used_mb", "hw.gpu_memory"),
    ],
    "disk": [("disk_free_gb", "hw.disk_free")],
}


def hardware_frames(mon: RunMonitor, lang: str) -> list:
    """One frame per hardware chart: seconds since the first sample, value, series."""
    if not mon.hardware:
        return [empty_curve()] * len(HARDWARE_CHARTS)
    start = mon.hardware[0]["time"]
    frames = []
    for series in HARDWARE_CHARTS.values():
        rows = [
            (round(e["time"] - start, 1), e[key], locale.t(label, lang))
            for e in mon.hardware
            for key, label in series
            if isinstance(e.get(key), (int, float))
        ]
        frames.append(pd.DataFrame(rows, columns=["seconds", "value", "series"]) if rows else empty_curve())
    return frames


def _clock(when: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when)) if when else ""


def chart_update(frame: pd.DataFrame | None, mon: RunMonitor):
    """The frame with an x range of whole steps: the planned run length (at least 20 steps), so
    the axis never shows 1.0, 1.2, 1.4 and the curve grows across a fixed axis."""
    if frame is None:
        return frame
    span = max(mon.max_steps or 0, int(frame["step"].max()), 20)
    return gr.update(value=frame, x_lim=[0, span])


def render_progress(mon: RunMonitor | None, lang: str, job=None) -> str:
    if mon is None:
        return f"<div class='wb-progress-empty'>{html.escape(locale.t('train.no_run', lang))}</div>"
    status = job.status if job else ("finished" if mon.final and mon.final["type"] == "end" else "running")
    pct = 100 * mon.fraction
    parts = [
        f"{locale.t('train.step', lang)} {mon.step}/{mon.max_steps or '?'}",
        f"{pct:.0f}%",
        f"{locale.t('train.eta', lang)} {format_duration(mon.eta_seconds())}",
    ]
    sps = mon.steps_per_second()
    if sps:
        parts.append(f"{sps:.2f} {locale.t('jobs.steps_per_second', lang)}")
    tps = mon.tokens_per_second()
    if tps:
        parts.append(f"{tps:.0f} {locale.t('train.tokens_per_second', lang)}")
    if mon.last_loss() is not None:
        parts.append(f"{locale.t('train.loss_now', lang)} {mon.last_loss():.4f}")
    if mon.final and mon.final.get("reason"):  # why it ended (early stopping, all steps, a stop)
        parts.append(locale.render(locale.Message.from_data(mon.final.get("reason_data")) or mon.final["reason"], lang))
    phase = locale.t(f"phase.{mon.phase}", lang) if status in ("running", "stopping") else ""
    message = html.escape(job_message(job, lang, mon.run_dir))
    return (
        f"<div class='wb-progress' data-status='{status}' data-step='{mon.step}' data-max='{mon.max_steps}'>"
        f"<div class='wb-status'><b>{html.escape(locale.t('status.' + status, lang))}</b> {html.escape(phase)}"
        f" <span class='wb-msg'>{message}</span></div>"
        f"<div class='wb-bar'><div class='wb-fill' style='width:{pct:.1f}%'></div></div>"
        f"<div class='wb-meta'>{html.escape(' · '.join(parts))}</div></div>"
    )


def job_message(job, lang: str, run_dir: Path | None = None) -> str:
    """Why a run ended or what its abort is doing, in one line; Resume offered where it can."""
    if job is None:
        return ""
    if job.status == "stopping" and job.abort_stage:
        return locale.t(f"jobs.stage.{job.abort_stage}", lang)
    text = locale.render(job.message, lang)
    if (
        job.status in ("interrupted", "aborted", "failed")
        and "resume" not in str(job.message).lower()
        and run_dir
        and complete_checkpoints(run_dir)
    ):
        offer = locale.t("jobs.resume_offered", lang)
        text = f"{text} · {offer}" if text else offer
    return text


def runs_frame(ctx: UIContext, lang: str, jobs=None) -> pd.DataFrame:
    """One row per run: status, method, dataset, steps, last loss, duration; a damaged run says
    what is wrong with it."""
    rows = []
    for row in reversed(ctx.controller.summaries(jobs)):
        status = locale.t("status." + row["status"], lang)
        if row["damaged"]:
            status = f"{status}: {locale.render(row['damaged'], lang)}"
        steps = f"{row['step']}/{row['max_steps']}" if row["max_steps"] else str(row["step"] or "")
        loss = row["last_loss"]
        rows.append(
            [
                row["run"],
                status,
                f"{row['stage']}/{row['method']}",
                row["dataset"],
                steps,
                "" if loss is None else f"{loss:.4f}",
                format_duration(row["duration"]),
                best_of(ctx.saves / row["run"]),
            ]
        )
    columns = [
        locale.t(f"runs.{c}", lang) for c in ("run", "status", "method", "dataset", "steps", "loss", "duration", "best")
    ]
    return pd.DataFrame(rows, columns=columns)


def best_of(run_dir: Path) -> str:
    """The run's best checkpoint by its validation metric, marked; empty when none is tracked."""
    from ..chat import BEST_MARK, best_checkpoint

    best = best_checkpoint(run_dir)
    return best + BEST_MARK if best else ""


def safe_run_name(text: str) -> str | None:
    """The last path part of a typed folder, reduced to safe characters."""
    import re
    from pathlib import PurePath

    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", PurePath(text.strip()).name).strip(".-")
    return name or None
