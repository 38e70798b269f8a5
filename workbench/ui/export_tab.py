"""Export tab: merge the adapter into the base, package the adapter, download either as a zip.

Downloads are served from the run's exports folder (registered as a static path at launch), so
multi-GB archives are streamed from disk, never copied through Gradio's cache."""
from __future__ import annotations

import gradio as gr

from .. import export, locale
from ..models import ModelError
from ..train import FINAL_DIR
from .context import UIContext


def finished_runs(ctx: UIContext) -> list[str]:
    return [r for r in reversed(ctx.controller.run_ids()) if (ctx.saves / r / FINAL_DIR).is_dir()]


def build(ctx: UIContext):
    loc = ctx.loc
    runs = finished_runs(ctx)
    with gr.Row():
        run = loc(gr.Dropdown(choices=runs, value=runs[0] if runs else None, elem_id="export-run", scale=3,
                              **loc.kwargs("export.run")), "export.run")
        dtype = loc(gr.Dropdown(choices=list(export.DTYPES), value="fp32", elem_id="export-dtype", scale=1,
                                **loc.kwargs("export.dtype")), "export.dtype")
        refresh = loc(gr.Button(loc.t("export.refresh"), scale=1, elem_id="export-refresh"), "export.refresh")
    with gr.Row():
        merge_btn = loc(gr.Button(loc.t("export.merge"), variant="primary", elem_id="export-merge"), "export.merge")
        adapter_btn = loc(gr.Button(loc.t("export.adapter"), elem_id="export-adapter"), "export.adapter")
    status = gr.Markdown("", elem_id="export-status")
    with gr.Row():
        merged_dl = loc(gr.DownloadButton(loc.t("export.download_merged"), visible=False,
                                          elem_id="export-download-merged"), "export.download_merged")
        adapter_dl = loc(gr.DownloadButton(loc.t("export.download_adapter"), visible=False,
                                           elem_id="export-download-adapter"), "export.download_adapter")

    def on_merge(run_id, dtype_name, lang, progress=gr.Progress()):
        if not run_id:
            return locale.t("export.pick_run", lang), gr.update(visible=False)
        progress(0.1, desc=locale.t("export.merging", lang))
        try:
            result = export.export_merged(ctx.saves / run_id, dtype=dtype_name)
        except (export.ExportError, ModelError, OSError, ValueError) as err:
            return f"⚠️ {err}", gr.update(visible=False)
        size = result.archive.stat().st_size / 2**20
        return (locale.t("export.merged_done", lang, folder=str(result.folder), size=f"{size:.0f}"),
                gr.update(value=str(result.archive), visible=True))

    def on_adapter(run_id, lang):
        if not run_id:
            return locale.t("export.pick_run", lang), gr.update(visible=False)
        try:
            result = export.export_adapter(ctx.saves / run_id)
        except (export.ExportError, OSError) as err:
            return f"⚠️ {err}", gr.update(visible=False)
        return (locale.t("export.adapter_done", lang, folder=str(result.folder)),
                gr.update(value=str(result.archive), visible=True))

    merge_btn.click(on_merge, [run, dtype, ctx.lang], [status, merged_dl])
    adapter_btn.click(on_adapter, [run, ctx.lang], [status, adapter_dl])
    def on_refresh(current):
        runs = finished_runs(ctx)
        return gr.update(choices=runs, value=current if current in runs else (runs[0] if runs else None))

    refresh.click(on_refresh, [run], [run])
    return on_refresh, [run], [run]  # the app calls this when the tab is opened
