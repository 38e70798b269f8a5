"""Export tab: pick a run and a kind (merged / adapter / bitsandbytes / GGUF), submit the export as
a job of the controller (its own process, workbench.tasks), watch its progress, stop it or run it
again, and download or delete finished exports.

Downloads are links to the run's exports folder, which launch() registers as a static path: files
are streamed from disk (never copied through Gradio's cache), and behind the login when one is set.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from .. import export, locale, tasks
from ..chat import labelled_choices, not_generative_reason
from ..confine import ConfinementError, run_folder
from ..runs import FINAL_DIR
from .context import UIContext

FILE_ROUTE = "/gradio_api/file="


def finished_runs(ctx: UIContext) -> list[str]:
    """Runs with a result to export; reward models and classifiers are not offered (the core
    refuses them: export writes text generators)."""
    return [
        r
        for r in reversed(ctx.controller.run_ids())
        if (ctx.saves / r / FINAL_DIR).is_dir() and not not_generative_reason(ctx.saves / r)
    ]


def download_url(path: Path) -> str:
    return FILE_ROUTE + str(Path(path).resolve())


def progress_html(state: dict | None, lang: str) -> str:
    """The job's state as a bar and a line of text (empty when there is no job)."""
    if not state:
        return ""
    fraction = float(state.get("fraction") or 0.0)
    kind = state.get("state", "running")
    word = locale.t(f"export.state_{kind}", lang)
    message = html.escape(str(state.get("message") or ""))
    return (
        f"<div class='wb-progress' data-status='{html.escape(kind)}'>"
        f"<div class='wb-bar'><div class='wb-fill' style='width:{100 * fraction:.0f}%'></div></div>"
        f"<div class='wb-meta'>{html.escape(state.get('kind') or '')}: {word} · {100 * fraction:.0f}%</div>"
        f"<div class='wb-msg'>{message}</div>"
        + (f"<div class='wb-parity'>{html.escape(str(state['parity']))}</div>" if state.get("parity") else "")
        + "</div>"
    )


PARITY_COLOURS = {"ok": "#1a7f37", "beyond": "#cf222e", "failed": "#cf222e", "unchecked": "#6e7781"}


def parity_cell(report: dict | None, lang: str) -> str:
    """The export's parity report in a few words, coloured by its verdict; the whole summary on hover."""
    if not report:
        return "—"
    status = report.get("status", "unchecked")
    word = locale.t(f"export.parity_{status}", lang)
    if status in ("ok", "beyond"):
        diff = report.get("max_diff")
        word += " · " + locale.t(
            "export.parity_short",
            lang,
            same=report.get("first_tokens_same"),
            n=report.get("prompts"),
            agree=f"{100 * report.get('token_agreement', 0):.0f}",
        )
        if diff is not None:
            word += f" · Δ{diff:.2g}"
    return (
        f"<span class='export-parity' data-status='{html.escape(status)}' "
        f"style='color:{PARITY_COLOURS.get(status, '#6e7781')};font-weight:600' "
        f"title='{html.escape(str(report.get('summary', '')))}'>{html.escape(word)}</span>"
    )


def size_text(mb: float | None) -> str:
    return "?" if mb is None else f"{mb:,.0f} MB" if mb >= 10 else f"{mb:,.1f} MB"


def sizes_html(run_dir: Path | None, kind: str, dtype: str, bits: str, qtype: str, lang: str) -> str:
    """The expected size of each choice of the selected kind, before anything starts (the chosen
    one in bold)."""
    if not run_dir:
        return ""
    options = {
        "merged": ("dtype", export.MERGED_DTYPES, dtype),
        "bnb": ("quantize", export.QUANT_BITS, bits),
        "gguf": ("gguf_type", export.GGUF_TYPES, qtype),
        "adapter": (None, ("adapter",), "adapter"),
    }
    key, values, chosen = options.get(kind, (None, (), None))
    parts = []
    try:
        for value in values:
            size = export.expected_size(run_dir, kind, **({key: value} if key else {}))
            text = f"{value} ≈ {size_text(size / 2**20 if size else None)}"
            parts.append(f"<b>{html.escape(text)}</b>" if value == chosen else html.escape(text))
    except (export.ExportError, OSError):
        return ""
    return f"<div id='export-size-line'>{locale.t('export.expected_size', lang)} {' · '.join(parts)}</div>"


def list_html(run_dir: Path | None, lang: str) -> str:
    entries = export.export_entries(run_dir) if run_dir else []
    if not entries:
        return f"<p id='export-none'>{locale.t('export.none', lang)}</p>"
    rows = []
    for entry in entries:
        links = (
            " · ".join(
                f"<a href='{html.escape(download_url(p))}' download='{html.escape(p.name)}' "
                f"class='export-link' data-name='{html.escape(entry.name)}'>{html.escape(p.name)}</a>"
                for p in entry.downloads
            )
            or "—"
        )
        rows.append(
            f"<tr data-export='{html.escape(entry.name)}'><td>{html.escape(entry.name)}</td>"
            f"<td>{entry.kind}</td><td>{entry.size_mb:,.1f} MB</td><td>{links}</td>"
            f"<td>{parity_cell(export.read_parity(entry.folder), lang)}</td></tr>"
        )
    head = "".join(
        f"<th>{locale.t(k, lang)}</th>"
        for k in ("export.col_name", "export.col_kind", "export.col_size", "export.col_download", "export.col_parity")
    )
    return f"<table id='export-table'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_EXPORT_STATES = {
    "queued": "queued",
    "running": "running",
    "stopping": "running",
    "finished": "done",
    "aborted": "cancelled",
}


def export_state(view: dict | None) -> dict | None:
    """The export job as the tab shows it: state (queued, running, done, error, cancelled),
    fraction, one line, and the finished export's name."""
    if not view:
        return None
    result = view.get("result") or {}
    return {
        "state": _EXPORT_STATES.get(view["status"], "error"),
        "fraction": view.get("fraction") or 0.0,
        "message": view.get("message") or "",
        "kind": view["args"].get("kind"),
        "name": result.get("name"),
        "parity": result.get("parity"),
        "job": view["id"],
        "status": view["status"],
    }


def latest_download(state: dict | None, run_dir: Path | None) -> str | None:
    """The main download of the export the last job finished (its zip, or its GGUF file)."""
    if not state or state.get("state") != "done" or not run_dir:
        return None
    for entry in export.export_entries(run_dir):
        if entry.name == state.get("name") and entry.downloads:
            return str(entry.downloads[0])
    return None


def build(ctx: UIContext):
    loc = ctx.loc
    runs = finished_runs(ctx)
    with gr.Row():
        run = loc(
            gr.Dropdown(
                choices=labelled_choices(runs, ctx.saves),
                value=runs[0] if runs else None,
                elem_id="export-run",
                scale=3,
                **loc.kwargs("export.run"),
            ),
            "export.run",
        )
        kind = loc(
            gr.Radio(
                choices=list(export.KINDS), value="merged", elem_id="export-kind", scale=3, **loc.kwargs("export.kind")
            ),
            "export.kind",
        )
        refresh = loc(gr.Button(loc.t("export.refresh"), scale=1, elem_id="export-refresh"), "export.refresh")
    with gr.Row():
        dtype = loc(
            gr.Dropdown(
                choices=list(export.MERGED_DTYPES), value="auto", elem_id="export-dtype", **loc.kwargs("export.dtype")
            ),
            "export.dtype",
        )
        shard = loc(
            gr.Dropdown(
                choices=list(export.SHARD_SIZES),
                value="2GB",
                allow_custom_value=True,
                elem_id="export-shard",
                **loc.kwargs("export.shard"),
            ),
            "export.shard",
        )
        quantize = loc(
            gr.Dropdown(
                choices=list(export.QUANT_BITS),
                value="4bit",
                elem_id="export-quantize",
                visible=False,
                **loc.kwargs("export.quantize"),
            ),
            "export.quantize",
        )
        gguf_type = loc(
            gr.Dropdown(
                choices=list(export.GGUF_TYPES),
                value="q8_0",
                elem_id="export-gguf",
                visible=False,
                **loc.kwargs("export.gguf"),
            ),
            "export.gguf",
        )
    sizes = gr.HTML(
        sizes_html(ctx.saves / runs[0] if runs else None, "merged", "auto", "4bit", "q8_0", loc.lang),
        elem_id="export-size",
    )
    with gr.Row():
        start = loc(gr.Button(loc.t("export.merge"), variant="primary", elem_id="export-merge"), "export.merge")
        cancel = loc(gr.Button(loc.t("export.cancel"), variant="stop", elem_id="export-cancel"), "export.cancel")
        again = loc(gr.Button(loc.t("job.resubmit"), elem_id="export-resubmit"), "job.resubmit")
    status = gr.Markdown("", elem_id="export-status")
    progress = gr.HTML("", elem_id="export-progress")
    latest = loc(
        gr.DownloadButton(loc.t("export.download_merged"), visible=False, elem_id="export-download-merged"),
        "export.download_merged",
    )
    loc(gr.Markdown(loc.t("export.list_title")), "export.list_title")
    listing = gr.HTML(list_html(ctx.saves / runs[0] if runs else None, loc.lang), elem_id="export-list")
    with gr.Row():
        to_delete = loc(
            gr.Dropdown(
                choices=[], value=None, elem_id="export-delete-name", scale=3, **loc.kwargs("export.delete_name")
            ),
            "export.delete_name",
        )
        delete = loc(gr.Button(loc.t("export.delete"), elem_id="export-delete", scale=1), "export.delete")
    timer = gr.Timer(1.0)

    def run_dir(run_id):
        """The run's folder; a name that is not a run of this server (a tampered request) is none."""
        if not run_id:
            return None
        try:
            folder = run_folder(ctx.saves, run_id)
        except ConfinementError:
            return None
        return folder if "/" not in run_id and folder.is_dir() else None

    ctx.rendered_views.append((lambda run_id, lang: list_html(run_dir(run_id), lang), [run, ctx.lang], [listing], True))

    def names(run_id):
        return [e.name for e in export.export_entries(run_dir(run_id))] if run_dir(run_id) else []

    def job_state(run_id):
        job = tasks.latest(ctx.controller, "export", {"run": run_id}) if run_id else None
        return export_state(tasks.view(ctx.controller, job)) if job else None

    def view(run_id, lang, message=None):
        """Everything that depends on the selected run: progress, latest download, list, delete names."""
        run_id = run_id if run_dir(run_id) else None
        state = job_state(run_id)
        ready = latest_download(state, run_dir(run_id))
        out = [
            progress_html(state, lang),
            gr.update(value=ready, visible=bool(ready)),
            list_html(run_dir(run_id), lang),
            gr.update(choices=names(run_id), value=None),
        ]
        if message is not None:
            out.insert(0, message)
        return out

    def on_start(run_id, kind_name, dtype_name, shard_size, bits, qtype, lang):
        if not run_dir(run_id):
            return view(run_id, lang, locale.t("export.pick_run", lang))
        current = job_state(run_id)
        if current and current["status"] in ("queued", "running", "stopping"):
            return view(
                run_id,
                lang,
                f"⚠️ an export of {run_id} is already {current['status']} ({current['kind']}); wait for it or cancel it",
            )
        try:
            tasks.submit(
                ctx.controller,
                "export",
                {
                    "run": run_id,
                    "kind": kind_name,
                    "dtype": dtype_name,
                    "max_shard_size": shard_size,
                    "quantize": bits,
                    "gguf_type": qtype,
                },
            )
        except (ValueError, OSError, export.ExportError) as err:
            return view(run_id, lang, f"⚠️ {err}")
        return view(run_id, lang, locale.t("export.started", lang, kind=kind_name))

    def on_cancel(run_id, lang):
        state = job_state(run_id) if run_dir(run_id) else None
        if not state:
            return view(run_id, lang, locale.t("export.pick_run", lang))
        return view(run_id, lang, ctx.controller.abort(state["job"]))

    def on_again(run_id, lang):
        state = job_state(run_id) if run_dir(run_id) else None
        if not run_id or not state:
            return view(run_id, lang, locale.t("job.none", lang))
        try:
            job_id = ctx.controller.resubmit(state["job"])
        except ValueError as err:
            return view(run_id, lang, f"⚠️ {err}")
        return view(run_id, lang, locale.t("job.submitted", lang, job=job_id))

    def on_delete(run_id, name, lang):
        if not run_dir(run_id) or not name:
            return view(run_id, lang, locale.t("export.pick_export", lang))
        try:
            export.delete_export(run_dir(run_id), name)
        except (export.ExportError, OSError) as err:
            return view(run_id, lang, f"⚠️ {err}")
        return view(run_id, lang, locale.t("export.deleted", lang, name=name))

    shown: dict = {}  # what each session last saw, so an idle tick sends nothing

    def on_tick(run_id, lang, request: gr.Request):
        run_id = run_id if run_dir(run_id) else None
        state = job_state(run_id)
        key = (run_id, lang, tuple(sorted((state or {}).items(), key=str)) if state else None, tuple(names(run_id)))
        session = getattr(request, "session_hash", None)
        if shown.get(session) == key:
            return [gr.skip()] * 4
        shown[session] = key
        return view(run_id, lang)

    view_outputs = [progress, latest, listing, to_delete]
    start.click(on_start, [run, kind, dtype, shard, quantize, gguf_type, ctx.lang], [status] + view_outputs)
    cancel.click(on_cancel, [run, ctx.lang], [status] + view_outputs, queue=False)
    again.click(on_again, [run, ctx.lang], [status] + view_outputs)
    delete.click(on_delete, [run, to_delete, ctx.lang], [status] + view_outputs)
    run.change(lambda r, lang: view(r, lang), [run, ctx.lang], view_outputs)
    timer.tick(on_tick, [run, ctx.lang], view_outputs, show_progress="hidden")

    def on_kind(kind_name):
        """Show only the options the chosen kind uses."""
        return (
            gr.update(visible=kind_name == "merged"),
            gr.update(visible=kind_name in ("merged", "bnb")),
            gr.update(visible=kind_name == "bnb"),
            gr.update(visible=kind_name == "gguf"),
        )

    kind.change(on_kind, [kind], [dtype, shard, quantize, gguf_type], queue=False)

    def on_choice(run_id, kind_name, dtype_name, bits, qtype, lang):
        return sizes_html(run_dir(run_id), kind_name, dtype_name, bits, qtype, lang)

    choice_inputs = [run, kind, dtype, quantize, gguf_type, ctx.lang]
    for control in (run, kind, dtype, quantize, gguf_type):
        control.change(on_choice, choice_inputs, [sizes], queue=False)

    def on_refresh(current):
        runs = finished_runs(ctx)
        return gr.update(
            choices=labelled_choices(runs, ctx.saves), value=current if current in runs else (runs[0] if runs else None)
        )

    refresh.click(on_refresh, [run], [run])
    return on_refresh, [run], [run]  # the app calls this when the tab is opened
