"""The online-RL part of the Train tab: mean reward, reward spread, KL and completion length per
step, and the completions the run sampled with their rewards (grpo/rloo runs only).

It follows the run picked in the Train tab with its own timer and its own incremental reader
of events.jsonl, so the rest of the tab is untouched by it."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .. import locale
from ..progress import RunMonitor
from ..rewards import read_samples
from .context import UIContext

SAMPLE_COLUMNS = ("step", "reward", "rewards", "prompt", "completion")


def build(ctx: UIContext, run_picker) -> None:
    loc = ctx.loc
    with loc(gr.Accordion(loc.t("train.rl_view"), open=True, visible=True, elem_id="train-rl"), "train.rl_view"):
        rl_plot = loc(
            gr.LinePlot(
                None,
                x="step",
                y="value",
                color="series",
                elem_id="rl-chart",
                height=260,
                **loc.kwargs("train.rl_chart"),
            ),
            "train.rl_chart",
        )
        samples = loc(
            gr.Dataframe(
                value=samples_frame([], loc.lang),
                interactive=False,
                wrap=True,
                elem_id="rl-samples",
                **loc.kwargs("train.rl_samples"),
            ),
            "train.rl_samples",
        )
    monitor = gr.State(None)
    timer = gr.Timer(2.0)

    def on_tick(run_id, mon: RunMonitor | None, lang):
        if not run_id:
            return None, gr.skip(), gr.skip()
        if mon is None or mon.run_dir.name != run_id:
            mon = RunMonitor(ctx.saves / run_id)
        mon.update()
        if not mon.new_points and mon.step and mon.rl:
            return mon, gr.skip(), gr.skip()
        return mon, rl_frame(mon), samples_frame(read_samples(ctx.saves / run_id), lang)

    timer.tick(on_tick, [run_picker, monitor, ctx.lang], [monitor, rl_plot, samples], show_progress="hidden")
    run_picker.change(
        lambda run_id, lang: on_tick(run_id, None, lang),
        [run_picker, ctx.lang],
        [monitor, rl_plot, samples],
        queue=False,
    )


def rl_frame(mon: RunMonitor) -> pd.DataFrame | None:
    rows = [(s, v, name) for name, points in mon.rl.items() for s, v in points]
    return pd.DataFrame(rows, columns=["step", "value", "series"]) if rows else None


def samples_frame(logged: list[dict], lang: str) -> pd.DataFrame:
    """The newest logged samples first: step, total reward, each reward, prompt, completion."""
    rows = []
    for entry in reversed(logged):
        for sample in entry.get("samples", []):
            parts = ", ".join(f"{k} {v:.3g}" for k, v in sample.get("rewards", {}).items())
            rows.append(
                (
                    entry.get("step"),
                    round(sample.get("reward", 0.0), 4),
                    parts,
                    sample.get("prompt", "")[-300:],
                    sample.get("completion", ""),
                )
            )
    names = [locale.t(f"train.rl_col_{c}", lang) for c in SAMPLE_COLUMNS]
    return pd.DataFrame(rows, columns=names)
