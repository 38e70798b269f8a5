"""The page: a language switch, the model row, and one tab per module."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import gradio as gr

from .. import locale
from ..chat import ChatEngine
from ..jobs import JobController
from ..runs import saves_root
from . import chat_tab, data_tab, export_tab, train_tab
from . import eval_tab, experiments_tab
from .context import UIContext
from .i18n import Localizer

CSS = """
.wb-progress { padding: 6px 0; }
.wb-bar { height: 14px; background: var(--neutral-200); border-radius: 7px; overflow: hidden; margin: 6px 0; }
.wb-fill { height: 100%; background: var(--color-accent); transition: width .5s; }
.wb-meta { font-variant-numeric: tabular-nums; opacity: .85; }
.wb-msg { opacity: .8; }
"""
MAX_UPLOAD = "100mb"


def create_app(lang: str = "en", saves: str | Path | None = None, dataset_dir: str = "data",
               controller: JobController | None = None, engine: ChatEngine | None = None) -> gr.Blocks:
    saves = Path(saves or saves_root()).expanduser().absolute()
    controller = controller or JobController(saves)
    ctx = UIContext(loc=Localizer(lang), controller=controller, engine=engine or ChatEngine(),
                    saves=saves, dataset_dir=dataset_dir)
    loc = ctx.loc
    with gr.Blocks(title="Workbench") as demo:
        ctx.lang = gr.State(lang)
        with gr.Row():
            loc(gr.Markdown(loc.t("app.title")), "app.title")
            switch = gr.Radio(choices=[(name, code) for code, name in locale.LANGUAGES.items()], value=lang,
                              show_label=False, container=False, elem_id="language", scale=0, min_width=220)
        folders = gr.Markdown(folders_text(ctx, lang), elem_id="app-folders")
        ctx.rendered_views.append((lambda code: folders_text(ctx, code), [ctx.lang], [folders], True))
        train_tab.build_model_row(ctx)
        with gr.Tabs():
            with loc(gr.Tab(loc.t("tab.train"), id="train", elem_id="tab-train"), "tab.train"):
                train_tab.build(ctx)
            with loc(gr.Tab(loc.t("tab.data"), id="data", elem_id="tab-data"), "tab.data"):
                data_tab.build(ctx)
            with loc(gr.Tab(loc.t("tab.chat"), id="chat", elem_id="tab-chat"), "tab.chat") as chat:
                refresh_on_open(chat, chat_tab.build(ctx))
            with loc(gr.Tab(loc.t("tab.export"), id="export", elem_id="tab-export"), "tab.export") as exports:
                refresh_on_open(exports, export_tab.build(ctx))
            with loc(gr.Tab(loc.t("tab.evaluate"), id="evaluate", elem_id="tab-evaluate"), "tab.evaluate") as evals:
                refresh_on_open(evals, eval_tab.build(ctx))
            with loc(gr.Tab(loc.t("tab.experiments"), id="experiments", elem_id="tab-experiments"),
                     "tab.experiments") as experiments:
                refresh_on_open(experiments, experiments_tab.build(ctx))

        def on_language(code):
            return [code] + loc.updates(code)

        language_switched = switch.change(on_language, [switch], [ctx.lang] + loc.components(), queue=False)
        for fn, inputs, outputs, again_on_language in ctx.rendered_views:
            demo.load(fn, inputs=inputs, outputs=outputs, show_progress="hidden")
            if again_on_language:
                language_switched.then(fn, inputs=inputs, outputs=outputs, show_progress="hidden")
    demo.wb_context = ctx  # tests and launch() reach the controller through this
    return demo


def folders_text(ctx: UIContext, lang: str) -> str:
    """The absolute runs folder this page serves and the folders its datasets come from."""
    from ..data.registry import dataset_folders

    folders = ", ".join(f"`{folder}`" for folder in dataset_folders(ctx.dataset_dir))
    return locale.t("app.folders", lang, saves=ctx.saves, folders=folders)


def refresh_on_open(tab: gr.Tab, hook) -> None:
    """Tabs that list runs refresh their pickers whenever they are opened."""
    fn, inputs, outputs = hook
    tab.select(fn, inputs, outputs, show_progress="hidden")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_auth(auth: str | None, auth_file: str | None) -> list[tuple[str, str]] | None:
    """user:password pairs from --auth and/or a file with one user:password per line."""
    pairs = []
    for text in ([auth] if auth else []) + (Path(auth_file).read_text().splitlines() if auth_file else []):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            raise ValueError("a login must be written user:password")
        pairs.append((user, password))
    return pairs or None


def launch(host: str = "127.0.0.1", port: int = 7860, lang: str = "en", auth: str | None = None,
           auth_file: str | None = None, saves: str | None = None, dataset_dir: str = "data",
           block: bool = True):
    logins = read_auth(auth, auth_file)
    if not is_loopback(host) and not logins:
        raise SystemExit(f"refusing to serve on {host} without a login: pass --auth user:password "
                         f"or --auth-file FILE (or bind 127.0.0.1)")
    saves_path = Path(saves or saves_root()).resolve()
    saves_path.mkdir(parents=True, exist_ok=True)
    # exports are served straight from disk (no copy through Gradio's cache)
    gr.set_static_paths([str(saves_path)])
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = create_app(lang=lang, saves=saves_path, dataset_dir=dataset_dir)
    demo.wb_context.controller.start_watcher()
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.launch(server_name=host, server_port=port, share=False, auth=logins, max_file_size=MAX_UPLOAD,
                show_error=True, prevent_thread_lock=not block, css=CSS, footer_links=[],
                allowed_paths=[str(saves_path)])
    return demo
