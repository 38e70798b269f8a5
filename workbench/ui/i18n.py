"""Localized components: each is registered once, at creation, with its locale key, so a
language switch can relabel every one of them in a single event."""

from __future__ import annotations

import gradio as gr

from .. import locale

# components whose visible text is their value rather than their label
_VALUE_TEXT = (gr.Button, gr.Markdown)
# buttons whose value is a file: their visible text is their label
_LABEL_TEXT = (gr.DownloadButton, gr.UploadButton)


class Localizer:
    def __init__(self, lang: str = "en"):
        self.lang = lang
        self.entries: list[tuple[gr.components.Component, str]] = []

    def t(self, key: str, **fmt) -> str:
        return locale.t(key, self.lang, **fmt)

    def __call__(self, component, key: str):
        """Register `component` under `key` and return it (use inline at creation)."""
        self.entries.append((component, key))
        return component

    def kwargs(self, key: str) -> dict:
        """label= and info= for an input component's constructor."""
        out = {"label": self.t(key)}
        info = locale.t_optional(key + ".info", self.lang)
        if info:
            out["info"] = info
        return out

    def plot_kwargs(self, key: str) -> dict:
        """label= and the axis and legend titles of a chart (keys `key.x`, `key.y`, `key.color`)."""
        return {"label": self.t(key), **_plot_titles(key, self.lang)}

    def components(self) -> list:
        return [c for c, _ in self.entries]

    def updates(self, lang: str) -> list:
        """Relabel every registered component for one session (self.lang, the language the
        page was built in, stays: other sessions share this object)."""
        out = []
        for component, key in self.entries:
            text = locale.t(key, lang)
            if isinstance(component, _LABEL_TEXT):
                out.append(gr.update(label=text))
            elif isinstance(component, _VALUE_TEXT):
                out.append(gr.update(value=text))
            elif isinstance(component, (gr.Tab, gr.Accordion)):
                out.append(gr.update(label=text))
            elif isinstance(component, (gr.LinePlot, gr.BarPlot)):
                out.append(gr.update(label=text, **_plot_titles(key, lang)))
            else:
                info = locale.t_optional(key + ".info", lang)
                out.append(gr.update(label=text, info=info) if info else gr.update(label=text))
        return out


def _plot_titles(key: str, lang: str) -> dict:
    titles = {}
    for part in ("x", "y", "color"):
        text = locale.t_optional(f"{key}.{part}", lang)
        if text:
            titles[f"{part}_title"] = text
    return titles
