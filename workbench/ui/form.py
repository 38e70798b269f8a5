"""Form controls generated from RunConfig's field declarations: one control per field."""

from __future__ import annotations

import gradio as gr

from ..config import FIELDS, ConfigError, RunConfig, coerce, field_base_type, from_dict
from .i18n import Localizer

NONE_CHOICE = "none"


def _choice_value(value) -> str:
    return NONE_CHOICE if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def field_control(name: str, loc: Localizer, **overrides):
    """The control for one field, labelled and explained from its declaration."""
    meta = FIELDS[name].metadata
    default = FIELDS[name].default
    typ, nullable = field_base_type(name)
    kwargs = {**loc.kwargs(f"field.{name}"), "elem_id": f"field-{name}"}
    kwargs.update(overrides)
    if meta["choices"] is not None:
        control = gr.Dropdown(
            choices=[_choice_value(c) for c in meta["choices"]], value=_choice_value(default), **kwargs
        )
    elif typ is bool:
        control = gr.Checkbox(value=default, **kwargs)
    elif typ in (int, float):
        number = dict(minimum=meta["min"], maximum=meta["max"])
        if typ is int:
            number["precision"] = 0
        control = gr.Number(value=default, **{**number, **kwargs})
    else:
        control = gr.Textbox(value=default if default is not None else "", **kwargs)
    return loc(control, f"field.{name}")


def config_from_values(values: dict[str, object], base: RunConfig | None = None, workspace=None) -> RunConfig:
    """A validated RunConfig from control values (by field name); ConfigError lists every
    problem, each naming its field. With a workspace, every path in it must stay inside."""
    data = (base or RunConfig()).to_dict()
    for name, value in values.items():
        if isinstance(value, list):  # multiselect dropdowns (dataset)
            value = ",".join(str(v) for v in value)
        if isinstance(value, str) and value.strip().lower() == NONE_CHOICE and name in FIELDS:
            value = None
        data[name] = value
    cfg = from_dict(data)
    if workspace is not None and (problems := workspace_problems(workspace, cfg)):
        raise ConfigError(problems)
    return cfg


def workspace_problems(workspace, cfg) -> list[str]:
    """What a config from a browser may not do: paths outside the workspace, datasets the
    served folder does not offer."""
    from ..data.registry import unknown_datasets

    problems = workspace.check_config(cfg)
    if not problems and cfg.dataset and (message := unknown_datasets(cfg.dataset_dir, cfg.dataset)):
        problems.append(message)
    return problems


def control_value(name: str, value):
    """The value a control shows for a config value."""
    meta = FIELDS[name].metadata
    if meta["choices"] is not None:
        return _choice_value(value)
    if name == "dataset" and isinstance(value, str):
        return [d.strip() for d in value.split(",") if d.strip()]
    if value is None and field_base_type(name)[0] is str:
        return ""
    return value


__all__ = ["field_control", "config_from_values", "control_value", "ConfigError", "coerce"]
