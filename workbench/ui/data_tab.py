"""Data tab: add a dataset, then see exactly what the model will be trained on before Start.

A source is a registered dataset (picked from the list) or a file just uploaded (previewed
before it is registered). The knobs that change what is trained (train on prompt, cutoff,
splits, seed, identity placeholders) are shown here too; they mirror the run form's fields, so
the Train tab starts the run that was previewed."""

from __future__ import annotations

import html
import os
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import locale
from ..config import ConfigError
from ..data import FORMATS, TEXT_SPLITS, DataError, add_dataset, load_registry, local_dataset_names
from ..data.inspect import example_spans, inspect, length_histogram, row_preview
from ..models import ModelError, load_tokenizer
from .context import UIContext
from .form import config_from_values, field_control

PAGE = 10
# a preview reads the first rows of each file only, so any file previews in a few seconds and
# never holds the server long; registering and training still read and check every row
PREVIEW_ROWS = 2000
AUTO = "auto"
MIRRORED = ["train_on_prompt", "cutoff_len", "val_size", "test_size", "seed", "identity_name", "identity_author"]
UPLOAD_TYPES = [".json", ".jsonl", ".csv", ".parquet", ".txt"]
MAX_PREVIEW_CHARS = 12000
SPAN_STYLE = {
    "loss": "background:#bbf7d0;color:#14532d;border-radius:3px;",
    "rejected": "background:#fecaca;color:#7f1d1d;border-radius:3px;",
    "cut": "color:#9ca3af;text-decoration:line-through;",
    None: "color:var(--body-text-color);",
}


def build(ctx: UIContext) -> None:
    loc = ctx.loc
    names = local_dataset_names(ctx.dataset_dir)
    with gr.Row():
        dataset = loc(
            gr.Dropdown(
                choices=names,
                value="identity" if "identity" in names else (names or [None])[0],
                elem_id="data-dataset",
                scale=3,
                **loc.kwargs("data.dataset"),
            ),
            "data.dataset",
        )
        show = loc(gr.Button(loc.t("data.show"), variant="primary", scale=1, elem_id="data-show"), "data.show")
    with loc(gr.Accordion(loc.t("data.add"), open=True, elem_id="data-add"), "data.add"):
        with gr.Row():
            upload = loc(
                gr.File(
                    file_types=UPLOAD_TYPES,
                    type="filepath",
                    elem_id="data-upload",
                    scale=2,
                    **loc.kwargs("data.upload"),
                ),
                "data.upload",
            )
            with gr.Column(scale=3):
                with gr.Row():
                    name_box = loc(gr.Textbox(elem_id="data-name", **loc.kwargs("data.name")), "data.name")
                    fmt_box = loc(
                        gr.Dropdown(
                            choices=[AUTO, *FORMATS], value=AUTO, elem_id="data-format", **loc.kwargs("data.format")
                        ),
                        "data.format",
                    )
                    split_box = loc(
                        gr.Radio(
                            choices=list(TEXT_SPLITS),
                            value="auto",
                            elem_id="data-text-split",
                            **loc.kwargs("data.text_split"),
                        ),
                        "data.text_split",
                    )
                columns_box = loc(
                    gr.Textbox(
                        elem_id="data-columns",
                        placeholder="instruction=question, output=answer",
                        **loc.kwargs("data.columns"),
                    ),
                    "data.columns",
                )
                with gr.Row():
                    check = loc(gr.Button(loc.t("data.check"), elem_id="data-check"), "data.check")
                    register = loc(
                        gr.Button(loc.t("data.register"), variant="primary", elem_id="data-register"), "data.register"
                    )
        upload_msg = gr.Markdown("", elem_id="data-upload-message")
    with gr.Row():
        mirrors = {name: field_control(name, loc, elem_id=f"data-{name}") for name in MIRRORED}
    summary = gr.Markdown("", elem_id="data-summary")
    histogram = loc(
        gr.BarPlot(
            None, x="length", y="rows", height=260, elem_id="data-histogram", **loc.plot_kwargs("data.histogram")
        ),
        "data.histogram",
    )
    rows_table = loc(
        gr.Dataframe(interactive=False, wrap=True, elem_id="data-rows", max_height=420, **loc.kwargs("data.rows")),
        "data.rows",
    )
    with gr.Row(equal_height=True):
        page = loc(
            gr.Number(
                value=1, precision=0, minimum=1, elem_id="data-page", scale=1, min_width=100, **loc.kwargs("data.page")
            ),
            "data.page",
        )
        prev_btn = loc(gr.Button(loc.t("data.prev"), scale=1, min_width=90, elem_id="data-prev"), "data.prev")
        next_btn = loc(gr.Button(loc.t("data.next"), scale=1, min_width=90, elem_id="data-next"), "data.next")
        row_index = loc(
            gr.Number(value=1, precision=0, minimum=1, elem_id="data-row", scale=2, **loc.kwargs("data.row")),
            "data.row",
        )
    loc(gr.Markdown(loc.t("data.trained_heading")), "data.trained_heading")
    trained_text = gr.HTML("", elem_id="data-trained")
    source = gr.State(None)  # {"name": ...} or {"file": ..., "format": ..., "columns": ..., "text_split": ...}
    session = gr.State(None)  # (cfg, tokenizer, rows) of the last preview

    name_of = {component: name for name, component in ctx.fields.items()}
    mirror_of = {component: name for name, component in mirrors.items()}
    form_inputs = set(ctx.fields.values()) | set(mirrors.values()) | {ctx.lang}
    preview_outputs = [summary, histogram, rows_table, page, row_index, trained_text, session]

    def preview(data: dict, src: dict | None):
        lang = data[ctx.lang]
        if not src:
            return ("", gr.update(), gr.update(), gr.update(), gr.update(), "", None)
        values = {name_of[c]: v for c, v in data.items() if c in name_of}
        values.update({mirror_of[c]: v for c, v in data.items() if c in mirror_of})
        if "name" in src:  # names listed here come from the app's dataset folder
            values["dataset"], values["dataset_dir"] = src["name"], ctx.dataset_dir
        try:
            cfg = config_from_values(values, workspace=ctx.workspace)
            tokenizer = load_tokenizer(cfg.model_name_or_path)
            if "file" in src:
                path = str(ctx.workspace.upload_file(src["file"], "file")) if ctx.workspace else src["file"]
                result = inspect(
                    cfg,
                    tokenizer,
                    path,
                    src.get("format"),
                    src.get("columns"),
                    src.get("text_split", "auto"),
                    sample=PREVIEW_ROWS,
                )
            else:
                result = inspect(cfg, tokenizer, sample=PREVIEW_ROWS)
        except (ConfigError, DataError, ModelError, ValueError) as err:
            return (f"⚠️ {html.escape(str(err))}", gr.update(), pd.DataFrame(), gr.update(), gr.update(), "", None)
        state = (result.cfg, tokenizer, result.rows)
        text = summary_text(result, lang)
        if "name" in src:
            description = describe(ctx.dataset_dir, src["name"], cfg)
            text = f"{text}\n\n*{html.escape(description)}*" if description else text
            text = f"{text}\n\n{source_text(ctx.dataset_dir, src['name'], lang)}"
        hist = length_histogram(result.stats.lengths)
        frame = pd.DataFrame(hist, columns=["length", "rows"])
        return (
            text,
            gr.update(value=frame, sort=[h[0] for h in hist]),
            rows_frame(result.rows, 0),
            gr.update(value=1, maximum=pages(result.rows)),
            gr.update(value=1, maximum=len(result.rows)),
            example_html(state, 0, lang),
            state,
        )

    def preview_registered(data: dict):
        src = {"name": data[dataset]} if data[dataset] else None
        return (*preview(data, src), src)

    def preview_file(data: dict):
        path = data[upload]
        if not path:
            return ("", *[gr.update()] * 5, "", None, None, gr.update())
        src = {
            "file": path,
            "format": None if data[fmt_box] == AUTO else data[fmt_box],
            "columns": data[columns_box],
            "text_split": data[split_box],
        }
        name = data[name_box] or default_name(path)
        shown = preview(data, src)
        message = shown[0] if shown[0].startswith("⚠️") else ""
        return (message, *shown, src, name)

    def on_register(data: dict):
        lang, path, name = data[ctx.lang], data[upload], (data[name_box] or "").strip()
        fmt = None if data[fmt_box] == AUTO else data[fmt_box]
        if not path:
            return locale.t("data.no_file", lang), gr.update(), gr.update(), gr.update()
        name = name or default_name(path)
        try:
            if ctx.workspace is not None:
                path = str(ctx.workspace.upload_file(path, "file"))
            fmt, count = add_dataset(ctx.dataset_dir, name, path, fmt, data[columns_box], data[split_box])
        except (DataError, ValueError) as err:
            return f"⚠️ {html.escape(str(err))}", gr.update(), gr.update(), gr.update()
        forget_upload(ctx, path)
        choices = local_dataset_names(ctx.dataset_dir)
        text = locale.t("data.registered", lang, name=name, format=fmt, rows=count)
        return text, gr.update(choices=choices, value=name), gr.update(choices=choices), None

    def on_page(number, state):
        if not state:
            return gr.update()
        return rows_frame(state[2], max(0, int(number or 1) - 1))

    def on_row(number, state, lang):
        return example_html(state, int(number or 1) - 1, lang) if state else ""

    show.click(preview_registered, inputs={dataset} | form_inputs, outputs=preview_outputs + [source])
    # the shipped dataset's preview is there when the page opens (not redone on a language
    # switch: that would replace a file being previewed)
    ctx.rendered_views.append((preview_registered, {dataset} | form_inputs, preview_outputs + [source], False))
    dataset.input(preview_registered, inputs={dataset} | form_inputs, outputs=preview_outputs + [source])
    # a language switch redraws what is shown (the same dataset or file) in the new language
    ctx.language_views.append((lambda data: preview(data, data[source]), form_inputs | {source}, preview_outputs))
    file_inputs = {upload, fmt_box, columns_box, split_box, name_box} | form_inputs
    upload.upload(preview_file, inputs=file_inputs, outputs=[upload_msg] + preview_outputs + [source, name_box])
    check.click(preview_file, inputs=file_inputs, outputs=[upload_msg] + preview_outputs + [source, name_box])
    register.click(
        on_register,
        inputs={upload, name_box, fmt_box, columns_box, split_box, ctx.lang},
        outputs=[upload_msg, dataset, ctx.fields["dataset"], upload],
    )

    # a knob changed here re-previews the same source and updates the run form's field (a text or
    # number box when editing ends: its input event does not fire for every way of typing)
    def repreview(data: dict):
        return preview(data, data[source])

    for name, mirror in mirrors.items():
        field = ctx.fields[name]
        field.change(lambda value: value, [field], [mirror], queue=False)
        if isinstance(mirror, gr.Checkbox):
            mirror.input(lambda value: value, [mirror], [field], queue=False)
            mirror.change(repreview, inputs=form_inputs | {source}, outputs=preview_outputs)
            continue
        for event in (mirror.blur, mirror.submit):
            event(lambda value: value, [mirror], [field], queue=False)
        mirror.blur(repreview, inputs=form_inputs | {source}, outputs=preview_outputs)
    page.change(on_page, [page, session], [rows_table])
    prev_btn.click(lambda n: max(1, int(n or 1) - 1), [page], [page])
    next_btn.click(lambda n, s: min(pages(s[2]) if s else 1, int(n or 1) + 1), [page, session], [page])
    row_index.change(on_row, [row_index, session, ctx.lang], [trained_text])


def forget_upload(ctx: UIContext, path: str) -> None:
    """A registered file was copied into the dataset folder: the browser's upload is not needed."""
    uploads = ctx.workspace.uploads if ctx.workspace else None
    if uploads is not None and Path(path).is_relative_to(Path(os.path.realpath(uploads))):
        Path(path).unlink(missing_ok=True)


def describe(dataset_dir: str, name: str, cfg) -> str:
    """A registered dataset's description, placeholders filled."""
    entry = load_registry(dataset_dir).get(name)
    if entry is None or not entry.description:
        return ""
    return entry.description.replace("{{name}}", cfg.identity_name).replace("{{author}}", cfg.identity_author)


def source_text(dataset_dir: str, name: str, lang: str) -> str:
    """Which folder a registered dataset comes from, and whether it replaces a shipped one."""
    entry = load_registry(dataset_dir).get(name)
    if entry is None:
        return ""
    text = locale.t("data.source", lang, folder=entry.source())
    if entry.replaces is not None:
        text += " · " + locale.t("data.replaces", lang, shipped=entry.replaces)
    return text


def default_name(path: str) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in Path(path).stem)
    return stem.strip("_.-") or "dataset"


def pages(rows: list[dict]) -> int:
    return max(1, -(-len(rows) // PAGE))


def summary_text(result, lang: str) -> str:
    s = result.summary()
    text = locale.t(
        "data.summary",
        lang,
        kind=s["kind"],
        train=s["splits"]["train"],
        validation=s["splits"]["validation"],
        test=s["splits"]["test"],
        tokens=s["tokens"],
        trainable=s["trainable_tokens"],
        truncated=s["truncated"],
        dropped=s["dropped"],
        cutoff=s["cutoff_len"],
        max=s["max_length"],
        mean=s["mean_length"],
    )
    if s["format"]:
        text = locale.t("data.detected", lang, format=s["format"]) + " · " + text
    text += " · " + locale.t("data.stage", lang, stage=s["stage"])
    if s.get("sampled"):
        text += "\n\n*" + locale.t("data.sampled", lang, shown=s["sampled"][0], total=s["sampled"][1]) + "*"
    return text


def rows_frame(rows: list[dict], page_index: int) -> pd.DataFrame:
    """One page of normalized rows: number, split, then one column per role or field."""
    start = page_index * PAGE
    out = []
    for number, row in enumerate(rows[start : start + PAGE], start=start + 1):
        out.append(
            {"#": number, "split": row.get("split", ""), **{k: shorten(v, 300) for k, v in row_preview(row).items()}}
        )
    return pd.DataFrame(out)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def example_html(state, index: int, lang: str) -> str:
    """The exact text of one row as trained, with loss-carrying tokens marked."""
    cfg, tokenizer, rows = state
    if not rows:
        return ""
    index = min(max(index, 0), len(rows) - 1)
    try:
        spans = example_spans(tokenizer, rows[index], cfg)
    except (DataError, ValueError) as err:
        return f"<p>⚠️ {html.escape(str(err))}</p>"
    return spans_html(spans, lang)


def spans_html(spans: list[tuple[str, str | None]], lang: str) -> str:
    legend = " ".join(
        f"<span style='{SPAN_STYLE[tag]}padding:0 4px'>{html.escape(locale.t(key, lang))}</span>"
        for tag, key in (
            ("loss", "data.legend_loss"),
            (None, "data.legend_none"),
            ("rejected", "data.legend_rejected"),
            ("cut", "data.legend_cut"),
        )
    )
    parts, used = [], 0
    for text, tag in spans:
        if used >= MAX_PREVIEW_CHARS:
            parts.append("<span>…</span>")
            break
        text = text[: MAX_PREVIEW_CHARS - used]
        used += len(text)
        marker = "mark" if tag == "loss" else "span"
        parts.append(f"<{marker} class='wb-{tag or 'none'}' style='{SPAN_STYLE[tag]}'>{html.escape(text)}</{marker}>")
    body = "".join(parts)
    return (
        f"<div class='wb-legend' style='margin:4px 0'>{legend}</div>"
        f"<div class='wb-trained' style='white-space:pre-wrap;font-family:monospace;font-size:13px;"
        f"border:1px solid var(--border-color-primary);border-radius:6px;padding:8px;"
        f"max-height:480px;overflow:auto'>{body}</div>"
    )
