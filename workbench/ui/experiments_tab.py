"""Experiments tab: several runs side by side (loss curves overlaid, saved metrics, config
diff) and a sample gallery of one run's checkpoints answering the same prompts (a job of the
controller: the tab submits it, shows its progress and reads its result)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .. import locale, tasks
from ..experiments import config_diff, loss_curves, metrics_table
from .context import UIContext
from .job_view import job_html, view_key


def build(ctx: UIContext):
    loc = ctx.loc
    runs = list(reversed(ctx.controller.run_ids()))
    with gr.Row():
        picked = loc(
            gr.Dropdown(
                choices=runs, value=runs[:2], multiselect=True, elem_id="exp-runs", scale=4, **loc.kwargs("exp.runs")
            ),
            "exp.runs",
        )
        show = loc(gr.Button(loc.t("exp.show"), variant="primary", scale=1, elem_id="exp-show"), "exp.show")
    message = gr.Markdown("", elem_id="exp-message")
    plot = loc(
        gr.LinePlot(None, x="step", y="loss", color="run", elem_id="exp-loss", height=300, **loc.kwargs("exp.loss")),
        "exp.loss",
    )
    metrics = loc(
        gr.Dataframe(interactive=False, wrap=True, elem_id="exp-metrics", **loc.kwargs("exp.metrics")), "exp.metrics"
    )
    diff = loc(
        gr.Dataframe(interactive=False, wrap=True, elem_id="exp-config", **loc.kwargs("exp.config")), "exp.config"
    )
    loc(gr.Markdown("### " + loc.t("exp.gallery")), "exp.gallery")
    with gr.Row():
        gallery_run = loc(
            gr.Dropdown(
                choices=runs,
                value=runs[0] if runs else None,
                elem_id="gallery-run",
                scale=2,
                **loc.kwargs("exp.gallery_run"),
            ),
            "exp.gallery_run",
        )
        prompts = loc(
            gr.Textbox(lines=3, elem_id="gallery-prompts", scale=3, **loc.kwargs("exp.gallery_prompts")),
            "exp.gallery_prompts",
        )
        build_btn = loc(gr.Button(loc.t("exp.gallery_build"), scale=1, elem_id="gallery-build"), "exp.gallery_build")
        abort_btn = loc(gr.Button(loc.t("job.abort"), variant="stop", scale=1, elem_id="gallery-abort"), "job.abort")
    gallery_msg = gr.Markdown("", elem_id="gallery-message")
    gallery_progress = gr.HTML("", elem_id="gallery-progress")
    gallery = loc(
        gr.Dataframe(interactive=False, wrap=True, elem_id="gallery-table", **loc.kwargs("exp.gallery_table")),
        "exp.gallery_table",
    )

    def on_show(selected, lang):
        selected = selected or []
        if not selected:
            return locale.t("exp.none", lang), None, None, None
        try:
            points = loss_curves(ctx.saves, selected)
            metrics, diff = metrics_table(ctx.saves, selected), config_diff(ctx.saves, selected)
        except ValueError as err:  # a name that is not a run of this server
            return f"⚠️ {err}", None, None, None
        # validation curves are drawn as their own line per run
        frame = (
            pd.DataFrame(
                [
                    {
                        "step": p["step"],
                        "loss": p["loss"],
                        "run": p["run"] if p["series"] == "train" else f"{p['run']} (validation)",
                    }
                    for p in points
                ]
            )
            if points
            else None
        )
        return "", frame, pd.DataFrame(metrics), pd.DataFrame(diff)

    def on_gallery(run, text, lang):
        if not run:
            return locale.t("exp.none", lang)
        lines = [line for line in (text or "").splitlines() if line.strip()]  # none: the run's test prompts
        try:
            job_id = tasks.submit(ctx.controller, "gallery", {"run": run, "prompts": lines})
        except (ValueError, OSError) as err:
            return f"⚠️ {err}"
        return locale.t("job.submitted", lang, job=job_id)

    def latest_view(run):
        job = tasks.latest(ctx.controller, "gallery", {"run": run}) if run else None
        return tasks.view(ctx.controller, job) if job else None

    def on_abort(run, lang):
        view = latest_view(run)
        return ctx.controller.abort(view["id"]) if view else locale.t("job.none", lang)

    shown: dict = {}  # what each session last saw, so an idle tick sends nothing

    def on_tick(run, lang, request: gr.Request):
        view = latest_view(run)
        key = (run, lang, view_key(view))
        session = getattr(request, "session_hash", None)
        if shown.get(session) == key:
            return gr.skip(), gr.skip()
        shown[session] = key
        frame = None
        if view and view["status"] == "finished" and view.get("result"):
            try:
                frame = gallery_frame(view["result"])
            except (KeyError, TypeError, ValueError):  # a hand-edited result file
                frame = None
        return job_html(view, lang, "gallery"), frame

    def on_refresh(selected, current):
        ids = list(reversed(ctx.controller.run_ids()))
        keep = [r for r in (selected or []) if r in ids]
        return (
            gr.update(choices=ids, value=keep),
            gr.update(choices=ids, value=current if current in ids else (ids[0] if ids else None)),
        )

    show.click(on_show, [picked, ctx.lang], [message, plot, metrics, diff])
    build_btn.click(on_gallery, [gallery_run, prompts, ctx.lang], [gallery_msg])
    abort_btn.click(on_abort, [gallery_run, ctx.lang], [gallery_msg], queue=False)
    gr.Timer(1.0).tick(on_tick, [gallery_run, ctx.lang], [gallery_progress, gallery], show_progress="hidden")
    return on_refresh, [picked, gallery_run], [picked, gallery_run]


def gallery_frame(gallery: dict) -> pd.DataFrame:
    """One row per prompt, one column per checkpoint (oldest to final): answers side by side."""
    columns: dict[str, dict[str, str]] = {}
    for row in gallery["rows"]:
        columns.setdefault(row["checkpoint"], {})[row["prompt"]] = row["answer"]
    return pd.DataFrame(
        [{"prompt": p, **{c: answers.get(p, "") for c, answers in columns.items()}} for p in gallery["prompts"]]
    )
