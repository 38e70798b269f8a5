"""`workbench chat` in a terminal: one prompt, interactive, options, bad input."""

from __future__ import annotations

import subprocess
import sys

from workbench.chat import ChatEngine, GenerationSettings, resolve_target

from conftest import ROOT, run_cli


def test_one_prompt_answers_like_the_engine_and_interactive_keeps_the_conversation(trained_lora_run):
    settings = GenerationSettings(
        max_new_tokens=12, temperature=0.8, top_p=0.8, top_k=20, repetition_penalty=1.3, seed=11
    )
    want = ChatEngine().reply(
        resolve_target("lora-run", trained_lora_run.parent), [{"role": "user", "content": "Who are you?"}], settings
    )
    env = {"WORKBENCH_SAVES": str(trained_lora_run.parent)}
    flags = [
        "--max-new-tokens",
        "12",
        "--temperature",
        "0.8",
        "--top-p",
        "0.8",
        "--top-k",
        "20",
        "--repetition-penalty",
        "1.3",
        "--seed",
        "11",
    ]
    done = run_cli("chat", "--run", "lora-run", "--prompt", "Who are you?", *flags, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == want.strip()
    assert "tokens/s" in done.stderr

    # interactive: two turns then an empty line; the same checkpoint given as a folder path
    import os

    talk = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "chat",
            "--run",
            str(trained_lora_run / "checkpoint-4"),
            "--max-new-tokens",
            "6",
        ],
        input="Hello\n/clear\nWho are you?\n\n",
        text=True,
        capture_output=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, **env},
    )
    assert talk.returncode == 0, talk.stderr
    assert talk.stderr.count("tokens/s") == 2 and "lora-run/checkpoint-4" in talk.stderr


def test_bad_run_and_bad_settings_are_named(trained_lora_run):
    env = {"WORKBENCH_SAVES": str(trained_lora_run.parent)}
    missing = run_cli("chat", "--run", "no-such-run", "--prompt", "hi", env=env)
    assert missing.returncode == 2 and "no such run: no-such-run" in missing.stderr
    bad = run_cli("chat", "--run", "lora-run", "--prompt", "hi", "--top-p", "1.5", env=env)
    assert bad.returncode == 2 and "top_p must be above 0 and at most 1" in bad.stderr
    unknown = run_cli("chat", "--model", "/no/such/model", "--prompt", "hi", env=env)
    assert unknown.returncode == 1 and "error: unknown model '/no/such/model'" in unknown.stderr
