"""Evaluate tab: metrics of the base or a run on a split; before/after with the forgetting
check; gap analysis of the base before training. All work is done by workbench.evaluate."""
from __future__ import annotations

import pandas as pd
import gradio as gr

from .. import locale
from ..chat import BASE_PREFIX, labelled_choices, list_targets
from ..data import local_dataset_names
from ..evaluate import EvalError, Evaluator, before_after, evaluate, gap_analysis
from .context import UIContext

SHOWN_METRICS = ("exact_match", "bleu", "rouge1", "rouge2", "rougeL", "loss", "perplexity",
                 "accuracy", "precision", "recall", "f1")


def build(ctx: UIContext):
    loc = ctx.loc
    targets = list_targets(ctx.saves)
    datasets = [""] + local_dataset_names(ctx.dataset_dir)
    with gr.Row():
        target = loc(gr.Dropdown(choices=labelled_choices(targets, ctx.saves), value=targets[1] if len(targets) > 1 else targets[0], elem_id="eval-target", scale=3,
                                 **loc.kwargs("eval.target")), "eval.target")
        dataset = loc(gr.Dropdown(choices=datasets, value="", elem_id="eval-dataset", scale=2,
                                  **loc.kwargs("eval.dataset")), "eval.dataset")
        split = loc(gr.Radio(choices=["test", "validation"], value="test", elem_id="eval-split", scale=1,
                             **loc.kwargs("eval.split")), "eval.split")
        limit = loc(gr.Number(value=60, precision=0, minimum=0, elem_id="eval-limit", scale=1,
                              **loc.kwargs("eval.limit")), "eval.limit")
        refresh = loc(gr.Button(loc.t("eval.refresh"), scale=1, elem_id="eval-refresh"), "eval.refresh")
    with gr.Row():
        run_btn = loc(gr.Button(loc.t("eval.run"), variant="primary", elem_id="eval-run"), "eval.run")
        compare_btn = loc(gr.Button(loc.t("eval.compare"), elem_id="eval-compare"), "eval.compare")
        gap_btn = loc(gr.Button(loc.t("eval.gap"), elem_id="eval-gap"), "eval.gap")
    summary = gr.Markdown("", elem_id="eval-summary")
    table = loc(gr.Dataframe(value=empty_rows(loc.lang), interactive=False, wrap=True, elem_id="eval-table",
                             **loc.kwargs("eval.table")), "eval.table")
    # a language switch renames the table's columns and keeps its rows
    ctx.rendered_views.append((relabel_columns, [table, ctx.lang], [table], True))

    def evaluator():
        return Evaluator(engine=ctx.engine, root=ctx.saves)

    def confined(spec):
        """A base model named by a browser is a known model, a hub id or a workspace folder."""
        if ctx.workspace is not None and spec and spec.startswith(BASE_PREFIX):
            ctx.workspace.model(spec[len(BASE_PREFIX):])

    def progress_fn(progress, lang):
        def report(done, total, what):
            progress(done / max(total, 1), desc=f"{locale.t('eval.running', lang)}: {what} {done}/{total}")
        return report

    def on_evaluate(spec, dataset_name, split_name, rows, lang, progress=gr.Progress()):
        if spec and spec.startswith(BASE_PREFIX) and not dataset_name:
            return locale.t("eval.need_dataset", lang), empty_rows(lang)
        try:
            confined(spec)
            result = evaluate(spec, dataset_name or None, split_name, evaluator(),
                              progress_fn(progress, lang), int(rows or 0) or None)
        except (EvalError, ValueError, OSError) as err:
            return f"⚠️ {err}", empty_rows(lang)
        text = locale.t("eval.metrics", lang, target=result.target, dataset=result.dataset,
                        split=result.split, rows=result.rows, metrics=metrics_text(result.metrics))
        frame = pd.DataFrame([{col(lang, "prompt"): p["prompt"], col(lang, "reference"): p["reference"],
                               col(lang, "prediction"): p["prediction"], col(lang, "exact"): "✓" if p["exact"] else ""}
                              for p in result.predictions])
        return text, frame

    def on_compare(spec, dataset_name, split_name, rows, lang, progress=gr.Progress()):
        if not spec or spec.startswith(BASE_PREFIX):
            return locale.t("eval.need_run", lang), empty_rows(lang)
        try:
            confined(spec)
            report = before_after(spec, dataset_name or None, split_name, evaluator(),
                                  progress_fn(progress, lang), int(rows or 0) or None)
        except (EvalError, ValueError, OSError) as err:
            return f"⚠️ {err}", empty_rows(lang)
        return compare_text(report, lang), compare_frame(report, lang)

    def on_gap(spec, dataset_name, rows, lang, progress=gr.Progress()):
        base = spec if spec and spec.startswith(BASE_PREFIX) else None
        try:
            confined(spec)
            from ..evaluate import base_spec_of, run_config_of

            cfg = None if base else run_config_of(spec, ctx.saves)
            base = base or base_spec_of(spec, ctx.saves)
            name = dataset_name or (cfg.dataset if cfg else "")
            if not name:
                return locale.t("eval.need_dataset", lang), empty_rows(lang)
            report = gap_analysis(base, name, evaluator(), progress_fn(progress, lang),
                                  int(rows or 0) or None, cfg=cfg)
        except (EvalError, ValueError, OSError) as err:
            return f"⚠️ {err}", empty_rows(lang)
        text = locale.t("eval.gap_summary", lang, target=report["target"], failed=report["failed"],
                        rows=report["rows"], split=report["split"], dataset=report["dataset"],
                        em=report["metrics"]["exact_match"])
        frame = pd.DataFrame([{col(lang, "prompt"): f["prompt"], col(lang, "reference"): f["reference"],
                               col(lang, "prediction"): f["prediction"]} for f in report["failures"]])
        return text, frame

    def on_refresh(current):
        specs = list_targets(ctx.saves)
        return gr.update(choices=labelled_choices(specs, ctx.saves), value=current if current in specs else specs[0])

    common = [target, dataset, split, limit, ctx.lang]
    run_btn.click(on_evaluate, common, [summary, table])
    compare_btn.click(on_compare, common, [summary, table])
    gap_btn.click(on_gap, [target, dataset, limit, ctx.lang], [summary, table])
    refresh.click(on_refresh, [target], [target])
    return on_refresh, [target], [target]  # the app calls this when the tab is opened


def col(lang: str, name: str) -> str:
    return locale.t(f"eval.col.{name}", lang)


def metrics_text(metrics: dict) -> str:
    return ", ".join(f"{k} {metrics[k]:.4g}" for k in SHOWN_METRICS if k in metrics)


def compare_text(report: dict, lang: str) -> str:
    lines = [locale.t("eval.compare_summary", lang, target=report["target"], base=report["base"],
                      dataset=report["dataset"], split=report["split"], rows=len(report["rows"]),
                      improved=report["improved"], worse=report["worse"])]
    base, tuned, delta = report["base_metrics"], report["tuned_metrics"], report["delta"]
    lines.append(f"\n**{locale.t('eval.metric_change', lang)}**\n")
    lines.append("| | base | tuned | Δ |\n|---|---:|---:|---:|")
    for key in SHOWN_METRICS:
        if key in delta:
            lines.append(f"| {key} | {base[key]:.4g} | {tuned[key]:.4g} | {delta[key]:+.4g} |")
    forgot = report["forgetting"]
    lines.append("\n" + locale.t("eval.forgetting", lang, before=forgot["perplexity_before"],
                                 after=forgot["perplexity_after"], change=forgot["change_percent"],
                                 threshold=forgot["threshold_percent"]))
    lines.append(locale.t("eval.forgetting_warning" if forgot["warning"] else "eval.forgetting_ok", lang))
    return "\n".join(lines)


def compare_frame(report: dict, lang: str) -> pd.DataFrame:
    return pd.DataFrame([{col(lang, "prompt"): r["prompt"], col(lang, "reference"): r["reference"],
                          col(lang, "base"): r["base"], col(lang, "tuned"): r["tuned"],
                          col(lang, "change"): locale.t(f"eval.change.{r['change']}", lang)}
                         for r in report["rows"]])


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
