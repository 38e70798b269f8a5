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
