"""What the tabs share: the localizer, the job controller, the chat engine and the controls."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from ..chat import ChatEngine
from ..confine import Workspace
from ..jobs import JobController
from .i18n import Localizer


@dataclass
class UIContext:
    loc: Localizer
    controller: JobController
    engine: ChatEngine
    saves: Path
    dataset_dir: str
    workspace: Workspace | None = None  # what browser requests may touch (paths are confined to it)
    fields: dict[str, gr.components.Component] = field(default_factory=dict)
    lang: gr.State | None = None  # the session's language
    run_pickers: list[gr.Dropdown] = field(default_factory=list)  # refreshed when runs change
    # (fn, inputs, outputs, again_on_language) that render a view from the form: app.py runs
    # them when a page opens and, where the flag says so, again after the language changes
    rendered_views: list[tuple] = field(default_factory=list)
    # (fn, inputs, outputs) redrawn after a language switch only (not when the page opens)
    language_views: list[tuple] = field(default_factory=list)

    def t(self, key: str, lang: str, **fmt) -> str:
        from .. import locale

        return locale.t(key, lang, **fmt)
