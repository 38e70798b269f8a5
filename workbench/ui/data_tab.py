"""Data tab: see exactly what the model will be trained on before pressing Start."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from .. import locale
from ..config import ConfigError
from ..data import DataError, local_dataset_names, tokenize_rows
from ..data.inspect import inspect, length_histogram, loss_spans
from ..models import ModelError, load_tokenizer
from .context import UIContext
from .form import config_from_values

PAGE = 10


def build(ctx: UIContext) -> None:
    loc = ctx.loc
    names = local_dataset_names(ctx.dataset_dir)
    with gr.Row():
        dataset = loc(gr.Dropdown(choices=names, value="identity" if "identity" in names else (names or [None])[0],
                                  elem_id="data-dataset", scale=3, **loc.kwargs("data.dataset")), "data.dataset")
        show = loc(gr.Button(loc.t("data.show"), variant="primary", scale=1, elem_id="data-show"), "data.show")
    summary = gr.Markdown("", elem_id="data-summary")
    with gr.Row():
        rows_table = loc(gr.Dataframe(interactive=False, wrap=True, elem_id="data-rows", scale=3,
                                      **loc.kwargs("data.rows")), "data.rows")
        histogram = loc(gr.BarPlot(pd.DataFrame({"length": [], "rows": []}), x="length", y="rows",
                                   elem_id="data-histogram", scale=2, **loc.kwargs("data.histogram")),
                        "data.histogram")
    row_index = loc(gr.Number(value=0, precision=0, minimum=0, elem_id="data-row", **loc.kwargs("data.row")), "data.row")
    trained_text = loc(gr.HighlightedText(combine_adjacent=True, show_legend=True, elem_id="data-trained",
                                          color_map={"loss": "green"}, **loc.kwargs("data.trained_text")),
                       "data.trained_text")
    state = gr.State(None)

    name_of = {component: name for name, component in ctx.fields.items()}

    def on_show(data: dict):
        lang, name = data[ctx.lang], data[dataset]
        values = {name_of[c]: v for c, v in data.items() if c in name_of}
        values["dataset"] = name
        try:
            cfg = config_from_values(values)
            tokenizer = load_tokenizer(cfg.model_name_or_path)
            result = inspect(cfg, tokenizer)
        except (ConfigError, DataError, ModelError, ValueError) as err:
            return (f"⚠️ {err}", gr.update(), gr.update(), gr.update(maximum=0), gr.update(value=None), None)
        s = result.summary()
        text = locale.t("data.summary", lang, kind=s["kind"], train=s["splits"]["train"],
                        validation=s["splits"]["validation"], test=s["splits"]["test"], tokens=s["tokens"],
                        trainable=s["trainable_tokens"], truncated=s["truncated"], dropped=s["dropped"],
                        cutoff=cfg.cutoff_len, max=s["max_length"], mean=s["mean_length"])
        table = rows_frame(result.splits.train[:PAGE * 5])
        hist = pd.DataFrame(length_histogram(result.stats.lengths), columns=["length", "rows"])
        session = (cfg, tokenizer, result.splits.train)
        return (text, table, hist, gr.update(maximum=max(0, len(result.splits.train) - 1), value=0),
                highlighted(session, 0), session)

    def on_row(index, session):
        return highlighted(session, int(index)) if session else gr.update()

    show.click(on_show, inputs={dataset} | set(ctx.fields.values()) | {ctx.lang},
               outputs=[summary, rows_table, histogram, row_index, trained_text, state])
    row_index.change(on_row, [row_index, state], [trained_text])


def highlighted(session, index: int):
    cfg, tokenizer, rows = session
    if not rows:
        return []
    examples, _ = tokenize_rows(tokenizer, [rows[index]], cfg)
    if not examples or "input_ids" not in examples[0]:
        return [(str(rows[index]), None)]
    return [(text, "loss" if trainable else None) for text, trainable in loss_spans(tokenizer, examples[0])]


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """Normalized rows as a table: one column per role turn for conversations."""
    out = []
    for row in rows:
        if "messages" in row and row["kind"] == "conversation":
            out.append({"system": next((m["content"] for m in row["messages"] if m["role"] == "system"), ""),
                        "prompt": " ⏎ ".join(m["content"] for m in row["messages"] if m["role"] == "user"),
                        "response": " ⏎ ".join(m["content"] for m in row["messages"] if m["role"] == "assistant")})
        else:
            out.append({k: v if isinstance(v, str) else str(v) for k, v in row.items()
                        if k not in ("kind", "dataset")})
    return pd.DataFrame(out)
