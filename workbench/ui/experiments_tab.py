"""Experiments tab: several runs side by side (loss curves overlaid, saved metrics, config
diff) and a sample gallery of one run's checkpoints answering the same prompts."""
from __future__ import annotations

import pandas as pd
import gradio as gr

from .. import locale
from ..evaluate import EvalError, Evaluator
from ..experiments import config_diff, default_prompts, loss_curves, metrics_table, sample_gallery
from .context import UIContext


def build(ctx: UIContext):
    loc = ctx.loc
    runs = list(reversed(ctx.controller.run_ids()))
    with gr.Row():
        picked = loc(gr.Dropdown(choices=runs, value=runs[:2], multiselect=True, elem_id="exp-runs", scale=4,
                                 **loc.kwargs("exp.runs")), "exp.runs")
        show = loc(gr.Button(loc.t("exp.show"), variant="primary", scale=1, elem_id="exp-show"), "exp.show")
    message = gr.Markdown("", elem_id="exp-message")
    plot = loc(gr.LinePlot(None, x="step", y="loss", color="run", elem_id="exp-loss", height=300,
                           **loc.kwargs("exp.loss")), "exp.loss")
    metrics = loc(gr.Dataframe(interactive=False, wrap=True, elem_id="exp-metrics", **loc.kwargs("exp.metrics")),
                  "exp.metrics")
    diff = loc(gr.Dataframe(interactive=False, wrap=True, elem_id="exp-config", **loc.kwargs("exp.config")),
               "exp.config")
    loc(gr.Markdown("### " + loc.t("exp.gallery")), "exp.gallery")
    with gr.Row():
        gallery_run = loc(gr.Dropdown(choices=runs, value=runs[0] if runs else None, elem_id="gallery-run",
                                      scale=2, **loc.kwargs("exp.gallery_run")), "exp.gallery_run")
        prompts = loc(gr.Textbox(lines=3, elem_id="gallery-prompts", scale=3,
                                 **loc.kwargs("exp.gallery_prompts")), "exp.gallery_prompts")
        build_btn = loc(gr.Button(loc.t("exp.gallery_build"), scale=1, elem_id="gallery-build"),
                        "exp.gallery_build")
    gallery_msg = gr.Markdown("", elem_id="gallery-message")
    gallery = loc(gr.Dataframe(interactive=False, wrap=True, elem_id="gallery-table",
                               **loc.kwargs("exp.gallery_table")), "exp.gallery_table")

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
        frame = pd.DataFrame([{"step": p["step"], "loss": p["loss"],
                               "run": p["run"] if p["series"] == "train" else f"{p['run']} (validation)"}
                              for p in points]) if points else None
        return "", frame, pd.DataFrame(metrics), pd.DataFrame(diff)

    def on_gallery(run, text, lang, progress=gr.Progress()):
        if not run:
            return locale.t("exp.none", lang), None
        try:
            lines = [line for line in (text or "").splitlines() if line.strip()] or \
                default_prompts(ctx.saves, run)
            result = sample_gallery(ctx.saves, run, lines, Evaluator(engine=ctx.engine, root=ctx.saves),
                                    lambda done, total, what: progress(done / total, desc=f"{what} {done}/{total}"))
        except (EvalError, ValueError, OSError) as err:
            return f"⚠️ {err}", None
        return "", gallery_frame(result)

    def on_refresh(selected, current):
        ids = list(reversed(ctx.controller.run_ids()))
        keep = [r for r in (selected or []) if r in ids]
        return (gr.update(choices=ids, value=keep),
                gr.update(choices=ids, value=current if current in ids else (ids[0] if ids else None)))

    show.click(on_show, [picked, ctx.lang], [message, plot, metrics, diff])
    build_btn.click(on_gallery, [gallery_run, prompts, ctx.lang], [gallery_msg, gallery])
    return on_refresh, [picked, gallery_run], [picked, gallery_run]


def gallery_frame(gallery: dict) -> pd.DataFrame:
    """One row per prompt, one column per checkpoint (oldest to final): answers side by side."""
    columns: dict[str, dict[str, str]] = {}
    for row in gallery["rows"]:
        columns.setdefault(row["checkpoint"], {})[row["prompt"]] = row["answer"]
    return pd.DataFrame([{"prompt": p, **{c: answers.get(p, "") for c, answers in columns.items()}}
                         for p in gallery["prompts"]])
