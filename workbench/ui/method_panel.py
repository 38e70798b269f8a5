"""Method panel of the Train tab: what the chosen method trains, whether the run fits, which
compute type it uses and how long it will take.

It reads the form, builds the model on the meta device (no weights are loaded) and shows the
trainable parameter count and share, the memory the run needs by part (activations for the
largest batch of the chosen data, with the cutoff-based worst case beside it), the memory of
the device it will run on, a plain fits / does-not-fit verdict (workbench.memory), the compute
type (what `auto` measured) and the expected duration (workbench.timing). It refreshes by
itself whenever a field the estimate depends on changes (no weights; the data's tokenization is
cached); the button recomputes on demand, e.g. after other programs freed memory."""

from __future__ import annotations

import html

import gradio as gr

from .. import locale
from ..config import ConfigError
from ..memory import EstimateError, MemoryEstimate, estimate, format_bytes
from ..methods import MethodError
from ..models import ModelError
from .context import UIContext
from .form import config_from_values

# the fields memory.estimate reads (model shape, method, quantization, batch and length, the
# optimizer and a reference copy); a change to any of them refreshes the panel
ESTIMATE_FIELDS = (
    "model_name_or_path",
    "compute_type",
    "quantization_bit",
    "quantization_type",
    "double_quantization",
    "stage",
    "finetuning_type",
    "lora_rank",
    "lora_target",
    "use_dora",
    "num_virtual_tokens",
    "freeze_trainable_layers",
    "freeze_trainable_modules",
    "per_device_train_batch_size",
    "cutoff_len",
    "activation_checkpointing",
    "optim",
    "use_ref_model",
    "dataset",
    "dataset_dir",
    "packing",
    "max_samples",
    "num_train_epochs",
    "max_steps",
    "gradient_accumulation_steps",
)


def build(ctx: UIContext) -> None:
    """The panel; call once every field control exists."""
    loc = ctx.loc
    with gr.Row():
        check_btn = loc(gr.Button(loc.t("method.check"), elem_id="method-check", scale=0), "method.check")
        panel = gr.HTML(f"<div class='wb-method'>{html.escape(loc.t('method.hint'))}</div>", elem_id="method-panel")
    name_of = {component: name for name, component in ctx.fields.items()}

    def on_check(data: dict):
        lang = data[ctx.lang]
        values = {name_of[c]: v for c, v in data.items() if c in name_of}
        try:
            cfg = config_from_values(values, workspace=ctx.workspace)
            lengths = _data_lengths(cfg)
            timing = _time_estimate(cfg, lengths)
            return render(estimate(cfg, lengths=lengths), cfg, lang, timing)
        except ConfigError as err:
            return render_problem(locale.t("train.bad_config", lang), err.problems)
        except (EstimateError, MethodError, ModelError, ValueError) as err:
            return render_problem(locale.t("method.cannot", lang), [str(err)])

    inputs = set(ctx.fields.values()) | {ctx.lang}
    check_btn.click(on_check, inputs=inputs, outputs=[panel])
    # "always_last": while typing, only the latest form is estimated once the previous one ends
    gr.on(
        [ctx.fields[name].change for name in ESTIMATE_FIELDS],
        on_check,
        inputs=inputs,
        outputs=[panel],
        trigger_mode="always_last",
        show_progress="hidden",
    )
    # on page open and after a language switch (inputs stay a set: on_check takes one dict)
    ctx.rendered_views.append((on_check, inputs, [panel], True))


def _data_lengths(cfg) -> list[int] | None:
    """The chosen data's tokenized lengths; None when it cannot be read yet (the estimate then
    takes batch x cutoff, and Start reports the data's own problem)."""
    from ..data import DataError
    from ..memory import data_lengths

    try:
        return data_lengths(cfg) or None
    except (DataError, ModelError, OSError, ValueError, KeyError):
        return None


def _time_estimate(cfg, lengths):
    from ..timing import estimate_time

    if not lengths:
        return None
    try:
        return estimate_time(cfg, lengths)
    except (ModelError, OSError, ValueError):
        return None


def dtype_text(cfg, lang: str) -> str:
    """Which compute type the run uses and why (what auto measured on this machine)."""
    from ..models import BF16_MARGIN, compute_dtype_for_model, cpu_bf16_choice, device_type, model_linear_shape

    dtype = str(compute_dtype_for_model(cfg.compute_type, cfg.model_name_or_path)).replace("torch.", "")
    if cfg.compute_type != "auto":
        return locale.t("method.dtype_set", lang, dtype=dtype)
    if device_type() != "cpu":
        return locale.t("method.dtype_device", lang, dtype=dtype, device=device_type())
    choice = cpu_bf16_choice(model_linear_shape(cfg.model_name_or_path))
    return locale.t("method.dtype_auto", lang, dtype=dtype, ratio=f"{choice.ratio:.1f}", margin=BF16_MARGIN)


def time_text(est, lang: str) -> str:
    from ..timing import format_duration

    if est.seconds is None:
        return locale.t("method.time_unknown", lang, steps=est.steps, tokens=f"{est.tokens:,}")
    return locale.t(
        "method.time",
        lang,
        duration=format_duration(est.seconds),
        steps=est.steps,
        per_step=f"{est.seconds_per_step:.1f}",
        speed=f"{est.tokens_per_s:.0f}",
    )


def render_problem(title: str, problems: list[str]) -> str:
    items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    return f"<div class='wb-method' data-verdict='error'>⚠️ <b>{html.escape(title)}</b><ul>{items}</ul></div>"


def render(est: MemoryEstimate, cfg, lang: str, timing=None) -> str:
    """The panel's HTML for an estimate (a plain function, tested without a browser).
    `timing`: a workbench.timing.TimeEstimate, shown when given."""

    def t(key, **fmt):
        return html.escape(locale.t(key, lang, **fmt))

    trainable = t(
        "method.trainable", trainable=f"{est.trainable:,}", total=f"{est.total:,}", share=f"{100 * est.share:.3f}"
    )
    activations = (
        t("method.activations_data", tokens=f"{est.batch_tokens:,}")
        if est.from_data
        else t("method.activations", batch=cfg.per_device_train_batch_size, cutoff=cfg.cutoff_len)
    )
    labels = {
        "weights": t("method.weights"),
        "gradients": t("method.gradients"),
        "optimizer": t("method.optimizer", optim=cfg.optim),
        "activations": activations,
        "overhead": t("method.overhead"),
    }
    rows = "".join(
        f"<tr><td>{labels[k]}</td><td style='text-align:right'>{format_bytes(v)}</td></tr>"
        for k, v in est.parts().items()
    )
    rows += (
        f"<tr><td><b>{t('method.needed')}</b></td>"
        f"<td style='text-align:right'><b>{format_bytes(est.needed)}</b></td></tr>"
    )
    if est.from_data:
        rows += (
            f"<tr><td colspan='2'><small>{t('method.worst', batch=cfg.per_device_train_batch_size, cutoff=cfg.cutoff_len, needed=format_bytes(est.worst_needed))}"
            f"</small></td></tr>"
        )
    device = t(
        "method.device", device=est.device, free=format_bytes(est.device_free), total=format_bytes(est.device_total)
    )
    try:
        device += "<br>" + html.escape(dtype_text(cfg, lang))
    except (ModelError, OSError, ValueError):
        pass
    if timing is not None:
        device += f"<div class='wb-time'>{html.escape(time_text(timing, lang))}</div>"
    verdict = "fits" if est.fits else "too_big"
    colour = "#15803d" if est.fits else "#b91c1c"
    return (
        f"<div class='wb-method' data-verdict='{verdict}'>"
        f"<div class='wb-trainable'>{trainable}</div>"
        f"<table class='wb-memory'>{rows}</table>"
        f"<div class='wb-device'>{device}</div>"
        # the colour on the <b> itself: the page's prose style colours bold text
        f"<div class='wb-verdict'><b style='color:{colour}'>{t('method.' + verdict)}</b></div></div>"
    )
