"""Which models the chat offers. (Answers, adapters, stop and sessions: test_chat_engine.py.)"""

from workbench.chat import BASE_PREFIX, list_targets, resolve_target


def test_targets_list_the_base_runs_and_checkpoints(trained_lora_run):
    specs = list_targets(trained_lora_run.parent)
    assert specs[0].startswith(BASE_PREFIX)
    assert "lora-run" in specs and "lora-run/checkpoint-8" in specs and "lora-run/checkpoint-4" in specs


def test_target_list_offers_each_run_base_and_newest_checkpoints_first(trained_lora_run, tiny_model_dir):
    specs = list_targets(trained_lora_run.parent)
    assert BASE_PREFIX + str(tiny_model_dir) in specs  # the run's own base, to compare against
    assert specs.index("lora-run/checkpoint-8") < specs.index("lora-run/checkpoint-4")
    run = resolve_target("lora-run/checkpoint-4", trained_lora_run.parent)
    assert run.adapter_dir.endswith("checkpoint-4") and run.base_model == str(tiny_model_dir)


def test_a_stop_pressed_before_the_reply_begins_stops_it(tmp_path, tiny_model_dir):
    """Stop between sending a prompt and the reply starting (the model still loading, the
    request waiting in the queue) ends that reply before any token; the next prompt is answered."""
    from workbench.chat import BASE_PREFIX, GenerationSettings
    from workbench.ui.app import create_app

    app = create_app(saves=tmp_path / "saves", allow_local_models=True)  # the tiny model is outside
    fn = {
        f.fn.__name__: f.fn
        for f in app.fns.values()
        if getattr(f.fn, "__name__", "") in ("add_prompt", "on_stop", "generate")
    }
    defaults = GenerationSettings()
    settings = ["", 16, 0.0, defaults.top_p, defaults.top_k, defaults.repetition_penalty, 0]

    def reply(session):
        _, pane, _ = fn["add_prompt"]("Hello", [], [], False, session)
        if stop_first:
            fn["on_stop"](session)
        updates = list(
            fn["generate"](pane, [], f"{BASE_PREFIX}{tiny_model_dir}", None, False, "none", "en", *settings, session)
        )
        return pane, updates[-1]

    stop_first = True
    pane, (_, _, stats, _) = reply("page-1")
    assert "stopped" in stats and all(m["role"] == "user" for m in pane)
    stop_first = False
    pane, (_, _, stats, _) = reply("page-1")
    assert "stopped" not in stats and pane[-1]["role"] == "assistant" and pane[-1]["content"]
