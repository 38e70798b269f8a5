"""The page: a language switch, the model row, and one tab per module."""

from __future__ import annotations

import ipaddress
import os
import shutil
from pathlib import Path

import gradio as gr

from .. import locale
from ..chat import ChatEngine
from ..confine import Workspace
from ..jobs import JobController
from ..runs import saves_root
from . import chat_tab, data_tab, eval_tab, experiments_tab, export_tab, train_tab
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
UPLOADS_DIR = ".uploads"  # under the runs folder: Gradio's upload folder when the operator set none
UPLOAD_SWEEP_S, UPLOAD_MAX_AGE_S = 600, 3600
OPERATOR_UPLOADS = os.environ.get("GRADIO_TEMP_DIR")  # an upload folder the operator chose


def upload_folder() -> str:
    from gradio.utils import get_upload_folder

    return get_upload_folder()


def clear_uploads(folder: Path, dataset_dirs: list[Path]) -> None:
    """At start-up: files left by earlier uploads, previews and interrupted registrations."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    for dataset_dir in dataset_dirs:
        for leftover in (dataset_dir / "uploads").glob(".upload-*"):
            leftover.unlink(missing_ok=True)


def import_model_libraries() -> None:
    """Import transformers' auto classes once, in this thread, before any handler runs: its lazy
    module is not safe to import from two handler threads at once (the page's first events run
    together and one of them then fails with "cannot import name 'AutoTokenizer'")."""
    import transformers

    for name in ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "AutoModelForSequenceClassification"):
        getattr(transformers, name)


def create_app(
    lang: str = "en",
    saves: str | Path | None = None,
    dataset_dir: str = "data",
    controller: JobController | None = None,
    engine: ChatEngine | None = None,
    allow_local_models: bool = False,
) -> gr.Blocks:
    saves = Path(saves or saves_root()).expanduser().absolute()
    controller = controller or JobController(saves)
    import_model_libraries()
    from ..data.registry import dataset_folders

    # the served folder is the one a run's dataset_dir names; datasets are also read from the
    # shipped folder (and ./data) beside it, so those are workspace too
    workspace = Workspace(
        saves=saves,
        dataset_dirs=(Path(dataset_dir),),
        uploads=Path(upload_folder()),
        allow_local_models=allow_local_models,
        read_roots=tuple(dataset_folders(dataset_dir)),
    )
    ctx = UIContext(
        loc=Localizer(lang),
        controller=controller,
        engine=engine or ChatEngine(),
        saves=saves,
        dataset_dir=dataset_dir,
        workspace=workspace,
    )
    loc = ctx.loc
    # files a browser uploads are deleted an hour after they arrive (and all of them at start-up)
    with gr.Blocks(title="Workbench", delete_cache=(UPLOAD_SWEEP_S, UPLOAD_MAX_AGE_S)) as demo:
        ctx.lang = gr.State(lang)
        with gr.Row():
            loc(gr.Markdown(loc.t("app.title")), "app.title")
            switch = gr.Radio(
                choices=[(name, code) for code, name in locale.LANGUAGES.items()],
                value=lang,
                label="🌐",
                show_label=False,
                container=False,
                elem_id="language",
                scale=0,
                min_width=220,
            )
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
            with loc(
                gr.Tab(loc.t("tab.experiments"), id="experiments", elem_id="tab-experiments"), "tab.experiments"
            ) as experiments:
                refresh_on_open(experiments, experiments_tab.build(ctx))

        def on_language(code):
            return [code] + loc.updates(code)

        language_switched = switch.change(on_language, [switch], [ctx.lang] + loc.components(), queue=False)
        for fn, inputs, outputs in ctx.language_views:
            language_switched.then(fn, inputs=inputs, outputs=outputs, show_progress="hidden")
        for fn, inputs, outputs, again_on_language in ctx.rendered_views:
            demo.load(fn, inputs=inputs, outputs=outputs, show_progress="hidden")
            if again_on_language:
                language_switched.then(fn, inputs=inputs, outputs=outputs, show_progress="hidden")
    hide_api_description(demo)
    demo.wb_context = ctx  # tests and launch() reach the controller through this
    return demo


def folders_text(ctx: UIContext, lang: str) -> str:
    """The absolute runs folder this page serves and the folders its datasets come from."""
    from ..data.registry import dataset_folders

    folders = ", ".join(f"`{folder}`" for folder in dataset_folders(ctx.dataset_dir))
    return locale.t("app.folders", lang, saves=ctx.saves, folders=folders)


def hide_api_description(demo: gr.Blocks) -> None:
    """Leave every event out of Gradio's API description: Gradio embeds that description in the
    login page too, and it lists the choices of each dropdown (run, checkpoint and dataset names).
    The page still calls its events; scripts use the `workbench` commands instead."""
    for fn in demo.fns.values():
        if fn.api_visibility == "public":
            fn.api_visibility = "undocumented"


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
    try:
        lines = Path(auth_file).read_text().splitlines() if auth_file else []
    except (OSError, UnicodeDecodeError) as err:
        raise SystemExit(f"--auth-file: cannot read {auth_file}: {getattr(err, 'strerror', None) or err}") from None
    for number, text in enumerate(([auth] if auth else []) + lines):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            where = "--auth" if auth and number == 0 else f"--auth-file line {number + (0 if auth else 1)}"
            # the password is never repeated back (it may be on a shared screen or in a log)
            raise SystemExit(
                f"{where}: a login must be written user:password, with a user name and a non-empty password"
            )
        pairs.append((user, password))
    return pairs or None


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    lang: str = "en",
    auth: str | None = None,
    auth_file: str | None = None,
    saves: str | None = None,
    dataset_dir: str = "data",
    block: bool = True,
    allow_local_models: bool = False,
):
    logins = read_auth(auth, auth_file)
    if not is_loopback(host) and not logins:
        raise SystemExit(
            f"refusing to serve on {host} without a login: pass --auth user:password "
            f"or --auth-file FILE (or bind 127.0.0.1)"
        )
    saves_path = Path(saves or saves_root()).resolve()
    saves_path.mkdir(parents=True, exist_ok=True)
    # exports are served straight from disk (no copy through Gradio's cache)
    gr.set_static_paths([str(saves_path)])
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # uploads land in a folder of this workspace (not a /tmp/gradio other servers share), emptied now
    os.environ["GRADIO_TEMP_DIR"] = OPERATOR_UPLOADS or str(saves_path / UPLOADS_DIR)
    uploads = Path(upload_folder())
    clear_uploads(uploads, [Path(dataset_dir)])
    uploads.mkdir(parents=True, exist_ok=True)
    demo = create_app(lang=lang, saves=saves_path, dataset_dir=dataset_dir, allow_local_models=allow_local_models)
    demo.wb_context.controller.start_watcher()
    demo.queue(default_concurrency_limit=1, max_size=64)
    from starlette.middleware import Middleware

    from .guard import Guard

    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        auth=logins,
        max_file_size=MAX_UPLOAD,
        show_error=True,
        prevent_thread_lock=not block,
        css=CSS,
        footer_links=[],
        allowed_paths=[str(saves_path)],
        app_kwargs={"middleware": [Middleware(Guard, uploads=uploads, roots=[saves_path, uploads])]},
    )
    return demo
