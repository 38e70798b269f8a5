"""Evaluate tab: metrics of the base or a run on a split; before/after with the forgetting
check; gap analysis of the base before training. Each is a job of the controller (it runs in its
own process, workbench.tasks); the tab submits it, shows its progress and reads its result."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .. import locale, tasks
from ..chat import BASE_PREFIX, labelled_choices, list_targets
from ..data import local_dataset_names
from .context import UIContext
from .job_view import job_html, view_key

SHOWN_METRICS = (
    "exact_match",
    "bleu",
    "rouge1",
    "rouge2",
    "rougeL",
    "loss",
    "perplexity",
    "accuracy",
    "precision",
    "recall",
    "f1",
)


def build(ctx: UIContext):
    loc = ctx.loc
    targets = list_targets(ctx.saves)
    datasets = [""] + local_dataset_names(ctx.dataset_dir)
    with gr.Row():
        target = loc(
            gr.Dropdown(
                choices=labelled_choices(targets, ctx.saves),
                value=targets[1] if len(targets) > 1 else targets[0],
                elem_id="eval-target",
                scale=3,
                **loc.kwargs("eval.target"),
            ),
            "eval.target",
        )
        dataset = loc(
            gr.Dropdown(choices=datasets, value="", elem_id="eval-dataset", scale=2, **loc.kwargs("eval.dataset")),
            "eval.dataset",
        )
        split = loc(
            gr.Radio(
                choices=["test", "validation"], value="test", elem_id="eval-split", scale=1, **loc.kwargs("eval.split")
            ),
            "eval.split",
        )
        limit = loc(
            gr.Number(value=60, precision=0, minimum=0, elem_id="eval-limit", scale=1, **loc.kwargs("eval.limit")),
            "eval.limit",
        )
        refresh = loc(gr.Button(loc.t("eval.refresh"), scale=1, elem_id="eval-refresh"), "eval.refresh")
    with gr.Row():
        run_btn = loc(gr.Button(loc.t("eval.run"), variant="primary", elem_id="eval-run"), "eval.run")
        compare_btn = loc(gr.Button(loc.t("eval.compare"), elem_id="eval-compare"), "eval.compare")
        gap_btn = loc(gr.Button(loc.t("eval.gap"), elem_id="eval-gap"), "eval.gap")
        abort_btn = loc(gr.Button(loc.t("job.abort"), variant="stop", elem_id="eval-abort"), "job.abort")
        again_btn = loc(gr.Button(loc.t("job.resubmit"), elem_id="eval-resubmit"), "job.resubmit")
    status = gr.Markdown("", elem_id="eval-status")
    progress = gr.HTML("", elem_id="eval-progress")
    summary = gr.Markdown("", elem_id="eval-summary")
    table = loc(
        gr.Dataframe(
            value=empty_rows(loc.lang), interactive=False, wrap=True, elem_id="eval-table", **loc.kwargs("eval.table")
        ),
        "eval.table",
    )
    timer = gr.Timer(1.0)
    # a language switch renames the table's columns and keeps its rows
    ctx.rendered_views.append((relabel_columns, [table, ctx.lang], [table], True))

    def latest_view():
        job = tasks.latest(ctx.controller, "eval")
        return tasks.view(ctx.controller, job) if job else None

    def confined(spec):
        """A base model named by a browser is a known model, a hub id or a workspace folder."""
        if ctx.workspace is not None and spec and spec.startswith(BASE_PREFIX):
            ctx.workspace.model(spec[len(BASE_PREFIX) :])

    def submit(args, lang):
        try:
            confined(args["spec"])
            job_id = tasks.submit(ctx.controller, "eval", {**args, "dataset_dir": ctx.dataset_dir})
        except (ValueError, OSError) as err:
            return f"⚠️ {err}"
        return locale.t("job.submitted", lang, job=job_id)

    def args_of(spec, dataset_name, split_name, rows, mode):
        return {
            "spec": spec,
            "dataset": dataset_name or None,
            "split": split_name,
            "mode": mode,
            "limit": int(rows or 0) or None,
        }

    def on_evaluate(spec, dataset_name, split_name, rows, lang):
        if spec and spec.startswith(BASE_PREFIX) and not dataset_name:
            return locale.t("eval.need_dataset", lang)
        return submit(args_of(spec, dataset_name, split_name, rows, "plain"), lang)

    def on_compare(spec, dataset_name, split_name, rows, lang):
        if not spec or spec.startswith(BASE_PREFIX):
            return locale.t("eval.need_run", lang)
        return submit(args_of(spec, dataset_name, split_name, rows, "compare"), lang)

    def on_gap(spec, dataset_name, rows, lang):
        if spec and spec.startswith(BASE_PREFIX) and not dataset_name:
            return locale.t("eval.need_dataset", lang)
        return submit(args_of(spec, dataset_name, "validation", rows, "gap"), lang)

    def on_abort(lang):
        view = latest_view()
        if not view:
            return locale.t("job.none", lang)
        return ctx.controller.abort(view["id"])

    def on_again(lang):
        view = latest_view()
        if not view:
            return locale.t("job.none", lang)
        try:
            return locale.t("job.submitted", lang, job=ctx.controller.resubmit(view["id"]))
        except ValueError as err:
            return f"⚠️ {err}"

    shown: dict = {}  # what each session last saw, so an idle tick sends nothing

    def on_tick(lang, request: gr.Request):
        view = latest_view()
        key = (lang, view_key(view))
        session = getattr(request, "session_hash", None)
        if shown.get(session) == key:
            return [gr.skip()] * 3
        shown[session] = key
        text, frame = result_view(view, lang)
        return job_html(view, lang, "eval"), text, frame

    def on_refresh(current):
        specs = list_targets(ctx.saves)
        return gr.update(choices=labelled_choices(specs, ctx.saves), value=current if current in specs else specs[0])

    common = [target, dataset, split, limit, ctx.lang]
    run_btn.click(on_evaluate, common, [status])
    compare_btn.click(on_compare, common, [status])
    gap_btn.click(on_gap, [target, dataset, limit, ctx.lang], [status])
    abort_btn.click(on_abort, [ctx.lang], [status], queue=False)
    again_btn.click(on_again, [ctx.lang], [status])
    timer.tick(on_tick, [ctx.lang], [progress, summary, table], show_progress="hidden")
    refresh.click(on_refresh, [target], [target])
    return on_refresh, [target], [target]  # the app calls this when the tab is opened


def result_view(view: dict | None, lang: str) -> tuple[str, pd.DataFrame]:
    """The summary line and the per-row table of the shown job: its result once it finished,
    its one-line reason when it failed."""
    if not view:
        return "", empty_rows(lang)
    if view["status"] in ("failed", "aborted", "interrupted", "damaged"):
        return locale.t(
            "job.failed",
            lang,
            job=view["id"],
            status=locale.t(f"status.{view['status']}", lang),
            message=view["message"],
        ), empty_rows(lang)
    report = view.get("result")
    if not report:
        return "", empty_rows(lang)
    mode = view["args"].get("mode", "plain")
    try:
        if mode == "compare":
            return compare_text(report, lang), compare_frame(report, lang)
        if mode == "gap":
            return gap_text(report, lang), gap_frame(report, lang)
        return metrics_summary(report, lang), predictions_frame(report, lang)
    except (KeyError, TypeError, ValueError) as err:  # a hand-edited result file
        return f"⚠️ {view['id']}: result.json is damaged ({err})", empty_rows(lang)


def metrics_summary(result: dict, lang: str) -> str:
    return locale.t(
        "eval.metrics",
        lang,
        target=result["target"],
        dataset=result["dataset"],
        split=result["split"],
        rows=result["rows"],
        metrics=metrics_text(result["metrics"]),
    )


def predictions_frame(result: dict, lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                col(lang, "prompt"): p["prompt"],
                col(lang, "reference"): p["reference"],
                col(lang, "prediction"): p["prediction"],
                col(lang, "exact"): "✓" if p["exact"] else "",
            }
            for p in result["predictions"]
        ]
    )


def gap_text(report: dict, lang: str) -> str:
    return locale.t(
        "eval.gap_summary",
        lang,
        target=report["target"],
        failed=report["failed"],
        rows=report["rows"],
        split=report["split"],
        dataset=report["dataset"],
        em=report["metrics"]["exact_match"],
    )


def gap_frame(report: dict, lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                col(lang, "prompt"): f["prompt"],
                col(lang, "reference"): f["reference"],
                col(lang, "prediction"): f["prediction"],
            }
            for f in report["failures"]
        ]
    )


def col(lang: str, name: str) -> str:
    return locale.t(f"eval.col.{name}", lang)


def metrics_text(metrics: dict) -> str:
    return ", ".join(f"{k} {metrics[k]:.4g}" for k in SHOWN_METRICS if k in metrics)


def compare_text(report: dict, lang: str) -> str:
    lines = [
        locale.t(
            "eval.compare_summary",
            lang,
            target=report["target"],
            base=report["base"],
            dataset=report["dataset"],
            split=report["split"],
            rows=len(report["rows"]),
            improved=report["improved"],
            worse=report["worse"],
        )
    ]
    base, tuned, delta = report["base_metrics"], report["tuned_metrics"], report["delta"]
    lines.append(f"\n**{locale.t('eval.metric_change', lang)}**\n")
    lines.append("| | base | tuned | Δ |\n|---|---:|---:|---:|")
    for key in SHOWN_METRICS:
        if key in delta:
            lines.append(f"| {key} | {base[key]:.4g} | {tuned[key]:.4g} | {delta[key]:+.4g} |")
    forgot = report["forgetting"]
    lines.append(
        "\n"
        + locale.t(
            "eval.forgetting",
            lang,
            before=forgot["perplexity_before"],
            after=forgot["perplexity_after"],
            change=forgot["change_percent"],
            threshold=forgot["threshold_percent"],
        )
    )
    lines.append(locale.t("eval.forgetting_warning" if forgot["warning"] else "eval.forgetting_ok", lang))
    return "\n".join(lines)


def compare_frame(report: dict, lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                col(lang, "prompt"): r["prompt"],
                col(lang, "reference"): r["reference"],
                col(lang, "base"): r["base"],
                col(lang, "tuned"): r["tuned"],
                col(lang, "change"): locale.t(f"eval.change.{r['change']}", lang),
            }
            for r in report["rows"]
        ]
    )


def relabel_columns(frame: pd.DataFrame | None, lang: str) -> pd.DataFrame:
    """The table with its column names in `lang` (rows as they are)."""
    if frame is None or not len(frame.columns):
        return empty_rows(lang)
    names = {}
    for key, entry in locale.STRINGS.items():
        if key.startswith("eval.col."):
            names.update({text: entry.get(lang, entry["en"]) for text in entry.values()})
    return frame.rename(columns=lambda name: names.get(name, name))


def empty_rows(lang: str) -> pd.DataFrame:
    """The per-row table before any result: its column names rather than Gradio's 1, 2, 3."""
    return pd.DataFrame(columns=[col(lang, key) for key in ("prompt", "reference", "prediction")])
