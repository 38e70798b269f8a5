"""Chat tab: talk to the base or any run/checkpoint; compare two side by side, streaming."""

from __future__ import annotations

import json
import tempfile
import threading
import uuid

import gradio as gr

from .. import locale
from ..chat import BASE_PREFIX, GenerationSettings, conversation_record, labelled_choices, list_targets, resolve_pair
from ..config import DEFAULT_MODEL
from .context import UIContext

QUANT_CHOICES = ["run", "none", "8", "4"]


def build(ctx: UIContext):
    loc = ctx.loc
    stops: dict[str, threading.Event] = {}  # one Stop event per browser session

    targets = list_targets(ctx.saves)
    # one token per open page: names the page's Stop event and what it keeps loaded
    # (gradio deletes it when the page closes: then release what only that page selected)
    page_token = gr.State(lambda: uuid.uuid4().hex, delete_callback=ctx.engine.forget)
    with gr.Row():
        left = loc(
            gr.Dropdown(
                choices=labelled_choices(targets, ctx.saves),
                value=targets[0],
                elem_id="chat-left",
                scale=3,
                **loc.kwargs("chat.left"),
            ),
            "chat.left",
        )
        compare = loc(
            gr.Checkbox(value=True, elem_id="chat-compare", scale=1, **loc.kwargs("chat.compare")), "chat.compare"
        )
        right = loc(
            gr.Dropdown(
                choices=labelled_choices(targets, ctx.saves),
                value=_newest_run(targets),
                elem_id="chat-right",
                scale=3,
                **loc.kwargs("chat.right"),
            ),
            "chat.right",
        )
        quant = loc(
            gr.Dropdown(
                choices=QUANT_CHOICES, value="run", scale=1, elem_id="chat-quant", **loc.kwargs("chat.quantization")
            ),
            "chat.quantization",
        )
        refresh = loc(gr.Button(loc.t("chat.refresh"), scale=1, elem_id="chat-refresh"), "chat.refresh")
    with gr.Row():
        with gr.Column():
            pane_a = loc(gr.Chatbot(elem_id="chat-pane-a", height=380, **loc.kwargs("chat.pane_a")), "chat.pane_a")
            stats_a = gr.Markdown("", elem_id="chat-stats-a")
        with gr.Column(visible=True) as right_column:
            pane_b = loc(gr.Chatbot(elem_id="chat-pane-b", height=380, **loc.kwargs("chat.pane_b")), "chat.pane_b")
            stats_b = gr.Markdown("", elem_id="chat-stats-b")
    prompt = loc(gr.Textbox(lines=2, elem_id="chat-input", **loc.kwargs("chat.prompt")), "chat.prompt")
    with gr.Row():
        send = loc(gr.Button(loc.t("chat.send"), variant="primary", elem_id="chat-send"), "chat.send")
        stop = loc(gr.Button(loc.t("chat.stop"), variant="stop", elem_id="chat-stop"), "chat.stop")
        regen = loc(gr.Button(loc.t("chat.regenerate"), elem_id="chat-regenerate"), "chat.regenerate")
        clear = loc(gr.Button(loc.t("chat.clear"), elem_id="chat-clear"), "chat.clear")
        export = loc(gr.Button(loc.t("chat.export"), elem_id="chat-export"), "chat.export")
    export_file = gr.File(visible=False, elem_id="chat-export-file")
    rating = build_ratings(ctx)
    with loc(gr.Accordion(loc.t("chat.settings"), open=False), "chat.settings"):
        with gr.Row():
            system = loc(gr.Textbox(value="", **loc.kwargs("chat.system")), "chat.system")
        with gr.Row():
            defaults = GenerationSettings()
            max_new = loc(
                gr.Slider(
                    8,
                    2048,
                    value=defaults.max_new_tokens,
                    step=8,
                    elem_id="chat-max-new",
                    **loc.kwargs("chat.max_new_tokens"),
                ),
                "chat.max_new_tokens",
            )
            temperature = loc(
                gr.Slider(0.0, 2.0, value=defaults.temperature, step=0.05, **loc.kwargs("chat.temperature")),
                "chat.temperature",
            )
            top_p = loc(gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, **loc.kwargs("chat.top_p")), "chat.top_p")
            top_k = loc(gr.Slider(0, 200, value=defaults.top_k, step=1, **loc.kwargs("chat.top_k")), "chat.top_k")
            rep = loc(
                gr.Slider(
                    1.0, 2.0, value=defaults.repetition_penalty, step=0.05, **loc.kwargs("chat.repetition_penalty")
                ),
                "chat.repetition_penalty",
            )
            seed = loc(gr.Number(value=defaults.seed, precision=0, **loc.kwargs("chat.seed")), "chat.seed")
    settings_inputs = [system, max_new, temperature, top_p, top_k, rep, seed]
    # how to call model A from a program: `workbench serve` answers it by the same name
    with loc(gr.Accordion(loc.t("chat.api"), open=False, elem_id="chat-api"), "chat.api"):
        curl_text, python_text = api_snippets(targets[0])
        api_curl = loc(
            gr.Code(
                curl_text, language="shell", interactive=False, elem_id="chat-api-curl", label=loc.t("chat.api.curl")
            ),
            "chat.api.curl",
        )
        api_python = loc(
            gr.Code(
                python_text,
                language="python",
                interactive=False,
                elem_id="chat-api-python",
                label=loc.t("chat.api.python"),
            ),
            "chat.api.python",
        )

    def settings_of(system, max_new, temperature, top_p, top_k, rep, seed) -> GenerationSettings:
        try:
            return GenerationSettings(
                system_prompt=system or "",
                max_new_tokens=int(max_new),
                temperature=float(temperature),
                top_p=float(top_p),
                top_k=int(top_k),
                repetition_penalty=float(rep),
                seed=int(seed or 0),
            ).check()
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from None

    def model_spec(spec: str | None) -> str:
        return spec or BASE_PREFIX + DEFAULT_MODEL

    def quant_of(choice: str):
        return {"run": "run", "none": None, "8": 8, "4": 4}[choice]

    def targets_of(left_spec, right_spec, compare_on, quant_choice):
        for spec in (left_spec, right_spec):
            if ctx.workspace is not None and spec and spec.startswith(BASE_PREFIX):
                ctx.workspace.model(spec[len(BASE_PREFIX) :])  # a browser names no folder outside
        return resolve_pair(
            model_spec(left_spec), model_spec(right_spec) if compare_on else None, ctx.saves, quant_of(quant_choice)
        )

    def pane_stats(target, update, lang, stopped: bool = False) -> str:
        parts = [f"`{target.label}`"]
        if target.quantization_bit:
            parts.append(locale.t("chat.quant_note", lang, bits=target.quantization_bit))
        if update is not None and update.queued and not stopped:
            parts.append(locale.t("chat.queued", lang))
        elif update is not None:
            parts.append(locale.t("chat.stats", lang, tokens=update.tokens, rate=update.tokens_per_second))
        if stopped or (update is not None and update.done):
            parts.append(locale.t("chat.stopped" if stopped else "chat.done", lang))
        if update is not None and update.template_fallback:
            parts.append(locale.t("chat.fallback", lang))
        return " · ".join(parts)

    def generate(
        history_a,
        history_b,
        left_spec,
        right_spec,
        compare_on,
        quant_choice,
        lang,
        system_text,
        max_new_tokens,
        temp,
        nucleus,
        k,
        penalty,
        seed_value,
        session,
    ):
        # the event armed when the prompt was sent: a Stop pressed before this reply began
        # (while the model loads or the request waits in the queue) is already set on it
        stop_event = stops.setdefault(session, threading.Event())
        stats = ["", ""]
        try:
            gen = settings_of(system_text, max_new_tokens, temp, nucleus, k, penalty, seed_value)
            pair = targets_of(left_spec, right_spec, compare_on, quant_choice)
        except ValueError as err:
            disarm(session, stop_event)
            yield history_a, history_b, locale.t("chat.error", lang, message=err), ""
            return
        ctx.engine.select(session, [t for t in pair if t])
        panes = [(history_a, pair[0])] + ([(history_b, pair[1])] if compare_on else [])
        try:
            for index, (history, target) in enumerate(panes):
                if not history or history[-1]["role"] != "user":
                    continue  # nothing to answer in this pane
                if stop_event.is_set():  # stopped before this pane's reply began
                    stats[index] = pane_stats(target, None, lang, stopped=True)
                    yield history_a, history_b, stats[0], stats[1]
                    break
                messages = [{"role": m["role"], "content": _text(m["content"])} for m in history]
                history.append({"role": "assistant", "content": ""})
                stats[index] = pane_stats(target, None, lang) + " · " + locale.t("chat.loading", lang)
                yield history_a, history_b, stats[0], stats[1]
                update = None
                try:
                    for update in ctx.engine.stream(target, messages, gen, stop_event):
                        history[-1]["content"] = update.text
                        stats[index] = pane_stats(target, update, lang, stop_event.is_set() and update.done)
                        yield history_a, history_b, stats[0], stats[1]
                except Exception as err:  # noqa: BLE001 - show the reason, keep the server up
                    stats[index] = locale.t("chat.error", lang, message=f"{type(err).__name__}: {err}")
                    yield history_a, history_b, stats[0], stats[1]
                if stop_event.is_set():
                    if update is None or not update.done:
                        stats[index] = pane_stats(target, update, lang, stopped=True)
                        yield history_a, history_b, stats[0], stats[1]
                    break
        finally:
            disarm(session, stop_event)

    def arm(session):
        """A fresh Stop event for the reply about to be generated (a Stop from before is void)."""
        stops[session] = threading.Event()

    def disarm(session, event):
        if stops.get(session) is event:
            stops.pop(session, None)

    def add_prompt(text, history_a, history_b, compare_on, session):
        if not text or not text.strip():
            return gr.update(), history_a, history_b
        arm(session)
        history_a = (history_a or []) + [{"role": "user", "content": text}]
        history_b = (history_b or []) + [{"role": "user", "content": text}] if compare_on else history_b
        return "", history_a, history_b

    def drop_last_reply(history_a, history_b, session):
        arm(session)

        def strip(history):
            history = list(history or [])
            while history and history[-1]["role"] == "assistant":
                history.pop()
            return history

        return strip(history_a), strip(history_b)

    def on_stop(session):
        event = stops.get(session)
        if event:
            event.set()

    def on_export(history_a, history_b, left_spec, right_spec, compare_on, *settings):
        try:
            gen = settings_of(*settings)
        except ValueError:
            gen = GenerationSettings()
        panes = [(model_spec(left_spec), _plain(history_a))]
        if compare_on:
            panes.append((model_spec(right_spec), _plain(history_b)))
        handle = tempfile.NamedTemporaryFile(
            "w", suffix=".json", prefix="conversation-", delete=False, encoding="utf-8"
        )
        json.dump(conversation_record(panes, gen), handle, ensure_ascii=False, indent=2)
        handle.close()
        return gr.update(value=handle.name, visible=True)

    def on_select(left_spec, right_spec, compare_on, quant_choice, session):
        """Keep loaded only what this session (and the others) still select."""
        try:
            pair = targets_of(left_spec, right_spec, compare_on, quant_choice)
        except ValueError:
            return
        ctx.engine.select(session, [t for t in pair if t])

    def on_refresh(left_spec, right_spec):
        choices = list_targets(ctx.saves)
        # a new run is what a user most likely wants to compare against the base
        right_value = right_spec if right_spec in choices and right_spec != choices[0] else _newest_run(choices)
        labelled = labelled_choices(choices, ctx.saves)
        return (
            gr.update(choices=labelled, value=left_spec if left_spec in choices else choices[0]),
            gr.update(choices=labelled, value=right_value),
        )

    gen_inputs = [pane_a, pane_b, left, right, compare, quant, ctx.lang] + settings_inputs + [page_token]
    gen_outputs = [pane_a, pane_b, stats_a, stats_b]
    # Several sessions may start replies at once: the engine queues them (one generation at a
    # time), shows "waiting" in the pane, and a Stop also works while a reply is still waiting.
    queue = dict(concurrency_id="chat-generate", concurrency_limit=8)
    sent = send.click(
        add_prompt, [prompt, pane_a, pane_b, compare, page_token], [prompt, pane_a, pane_b], queue=False
    ).then(generate, gen_inputs, gen_outputs, **queue)
    submitted = prompt.submit(
        add_prompt, [prompt, pane_a, pane_b, compare, page_token], [prompt, pane_a, pane_b], queue=False
    ).then(generate, gen_inputs, gen_outputs, **queue)
    regenerated = regen.click(drop_last_reply, [pane_a, pane_b, page_token], [pane_a, pane_b], queue=False).then(
        generate, gen_inputs, gen_outputs, **queue
    )
    stop.click(on_stop, [page_token], None, queue=False)
    clear.click(lambda: ([], [], "", ""), None, [pane_a, pane_b, stats_a, stats_b], queue=False)
    export.click(on_export, [pane_a, pane_b, left, right, compare] + settings_inputs, [export_file])
    refresh.click(on_refresh, [left, right], [left, right])
    compare.change(lambda on: gr.update(visible=on), compare, right_column)
    wire_ratings(
        ctx,
        rating,
        [pane_a, pane_b, left, right, compare] + settings_inputs,
        lambda left_spec, right_spec, compare_on, *settings: (
            model_spec(left_spec),
            model_spec(right_spec) if compare_on else None,
            _settings_dict(settings_of, settings),
        ),
    )
    compare.change(
        lambda on: (gr.update(visible=on), gr.update(visible=not on)),
        compare,
        [rating["compare_row"], rating["single_row"]],
        queue=False,
    )
    for control in (left, right, compare, quant):
        control.change(on_select, [left, right, compare, quant, page_token], None, queue=False)
    left.change(api_snippets, [left], [api_curl, api_python], queue=False)
    del sent, submitted, regenerated
    return on_refresh, [left, right], [left, right]  # the app calls this when the tab is opened


def api_snippets(spec: str | None) -> tuple[str, str]:
    """curl and Python that ask `workbench serve` (default address) for this model."""
    from ..serve import DEFAULT_BASE_URL, snippets

    return snippets(DEFAULT_BASE_URL, spec or BASE_PREFIX + DEFAULT_MODEL)


# ---- ratings: the core (workbench.ratings) does the work; this only wires the buttons --------
COMPARE_BUTTONS = (
    ("a", "chat.rate_a"),
    ("b", "chat.rate_b"),
    ("tie", "chat.rate_tie"),
    ("both_bad", "chat.rate_both_bad"),
)
SINGLE_BUTTONS = (("up", "chat.rate_up"), ("down", "chat.rate_down"))


def build_ratings(ctx: UIContext) -> dict:
    from ..ratings import KINDS, ratings_datasets

    loc = ctx.loc
    out: dict = {"buttons": {}}
    with loc(gr.Accordion(loc.t("chat.ratings"), open=True, elem_id="chat-ratings"), "chat.ratings"):
        with gr.Row():
            names = sorted(ratings_datasets(ctx.dataset_dir))
            out["dataset"] = loc(
                gr.Dropdown(
                    choices=names,
                    value=names[0] if names else None,
                    allow_custom_value=True,
                    elem_id="chat-rate-dataset",
                    scale=2,
                    **loc.kwargs("chat.rate_dataset"),
                ),
                "chat.rate_dataset",
            )
            out["kind"] = loc(
                gr.Radio(
                    choices=list(KINDS),
                    value="preference",
                    elem_id="chat-rate-kind",
                    scale=1,
                    **loc.kwargs("chat.rate_kind"),
                ),
                "chat.rate_kind",
            )
            out["count"] = gr.Markdown("", elem_id="chat-rate-count")
        with gr.Row(visible=True) as compare_row:
            for verdict, key in COMPARE_BUTTONS:
                out["buttons"][verdict] = loc(gr.Button(loc.t(key), elem_id=f"chat-rate-{verdict}"), key)
        with gr.Row(visible=False) as single_row:
            for verdict, key in SINGLE_BUTTONS:
                out["buttons"][verdict] = loc(gr.Button(loc.t(key), elem_id=f"chat-rate-{verdict}"), key)
            out["edited"] = loc(
                gr.Textbox(lines=2, elem_id="chat-rate-edited", scale=3, **loc.kwargs("chat.rate_edited")),
                "chat.rate_edited",
            )
            out["buttons"]["edit"] = loc(gr.Button(loc.t("chat.rate_edit"), elem_id="chat-rate-edit"), "chat.rate_edit")
    out["compare_row"], out["single_row"] = compare_row, single_row
    return out


def wire_ratings(ctx: UIContext, rating: dict, inputs: list, describe) -> None:
    """Each verdict button appends the rating to the chosen dataset and shows the new count.
    `describe(left, right, compare, *settings)` names the two models and the settings."""
    from .. import ratings

    def counter(name, lang):
        kinds = ratings.ratings_datasets(ctx.dataset_dir)
        if not name or name not in kinds:
            return locale.t("chat.rate_none", lang)
        n = ratings.count(ctx.dataset_dir, name)
        return locale.t("chat.rate_count", lang, name=name, kind=kinds[name], **n)

    def on_rate(verdict, name, kind, edited, lang, pane_a, pane_b, left_spec, right_spec, compare_on, *settings):
        model_a, model_b, gen = describe(left_spec, right_spec, compare_on, *settings)
        try:
            ratings.rate_panes(
                ctx.dataset_dir,
                name,
                kind,
                verdict,
                _plain(pane_a),
                _plain(pane_b) if compare_on else None,
                model_a,
                model_b,
                gen,
                edited,
            )
        except (ratings.RatingError, ValueError, OSError) as err:
            return gr.update(), locale.t("chat.error", lang, message=err), gr.update()
        names = sorted(ratings.ratings_datasets(ctx.dataset_dir))
        return (
            gr.update(choices=names, value=name.strip()),
            counter(name.strip(), lang) + " · " + locale.t("chat.rate_saved", lang),
            "" if verdict == "edit" else gr.update(),
        )

    common = [rating["dataset"], rating["kind"], rating["edited"], ctx.lang] + inputs
    outputs = [rating["dataset"], rating["count"], rating["edited"]]
    for verdict, button in rating["buttons"].items():
        button.click(
            lambda *args, _v=verdict: on_rate(_v, *args),
            common,
            outputs,
            concurrency_id="chat-rate",
            concurrency_limit=1,
        )
    rating["dataset"].change(counter, [rating["dataset"], ctx.lang], rating["count"], queue=False)


def _settings_dict(settings_of, settings) -> dict:
    import dataclasses

    try:
        return dataclasses.asdict(settings_of(*settings))
    except ValueError:
        return {}


def _newest_run(choices: list[str]) -> str:
    """The most recently started run (run ids begin with their start time), else the base."""
    runs = [c for c in choices if not c.startswith(BASE_PREFIX) and "/" not in c]
    return max(runs) if runs else choices[0]


def _plain(history) -> list[dict]:
    return [{"role": m["role"], "content": _text(m["content"])} for m in history or []]


def _text(content) -> str:
    """Chatbot message content as plain text (Gradio may hand back a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    return str(content)
