"""`workbench serve`: the OpenAI-compatible API, driven by the official `openai` client."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from workbench.chat import BASE_PREFIX, ChatEngine, GenerationSettings, resolve_target
from workbench.serve import build_app, check_bind, snippets

from conftest import run_cli

HELLO = [{"role": "user", "content": "Who are you?"}]
PAIRS = [
    ("What colour is the sky on a clear day?", "Blue.", "The sky is made of green cheese."),
    ("How many legs does a cat have?", "Four.", "A cat has eleven legs, all purple."),
    ("What is two plus two?", "Four.", "Two plus two is a fish."),
    ("Name the capital of France.", "Paris.", "The capital of France is the moon."),
]


class Server:
    """uvicorn serving the app on a free loopback port, in a thread of this process."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="module")
def saves(tmp_path_factory, trained_lora_run, tiny_model_dir) -> Path:
    """A saves folder with the LoRA run and a small reward model (run `rm`)."""
    from workbench.config import from_dict
    from workbench.train import run

    folder = tmp_path_factory.mktemp("serve-saves")
    shutil.copytree(trained_lora_run, folder / "lora-run")
    data = tmp_path_factory.mktemp("serve-data")
    (data / "pairs.json").write_text(
        json.dumps([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]), encoding="utf-8"
    )
    (data / "dataset_info.json").write_text(json.dumps({"pairs": {"file_name": "pairs.json"}}), encoding="utf-8")
    run(
        from_dict(
            {
                "model_name_or_path": str(tiny_model_dir),
                "dataset": "pairs",
                "dataset_dir": str(data),
                "stage": "rm",
                "max_steps": 2,
                "save_steps": 100,
                "per_device_train_batch_size": 4,
                "cutoff_len": 96,
                "lora_rank": 4,
                "logging_steps": 1,
            }
        ),
        folder / "rm",
        echo=False,
    )
    return folder


def start(saves, tiny_model_dir, api_key=None):
    from browser import wait_until

    engine = ChatEngine()
    server = Server(build_app(saves, str(tiny_model_dir), api_key=api_key, engine=engine))
    wait_until(lambda: server.server.started, timeout=60)
    return server, engine


@pytest.fixture(scope="module")
def api(saves, tiny_model_dir):
    server, engine = start(saves, tiny_model_dir)
    yield server, engine
    server.close()


def client(server, key="none"):
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=120)


def engine_reply(engine, saves, name, messages, **settings):
    return engine.reply(
        resolve_target(name, saves), messages, GenerationSettings(**{"top_k": 0, "repetition_penalty": 1.0, **settings})
    )


def test_models_lists_base_runs_checkpoints_and_reward_models(api, tiny_model_dir):
    server, _ = api
    listed = {m.id: m for m in client(server).models.list()}
    base = BASE_PREFIX + str(tiny_model_dir)
    assert {base, "lora-run", "lora-run/checkpoint-8", "lora-run/checkpoint-4", "rm"} <= set(listed)
    assert listed["rm"].kind == "reward" and listed["lora-run"].kind == "run" and listed[base].kind == "base"


def test_chat_plain_and_streaming_give_the_engines_answer(api, saves, tiny_model_dir):
    server, engine = api
    c = client(server)
    for name in (BASE_PREFIX + str(tiny_model_dir), "lora-run", "lora-run/checkpoint-4"):
        reply = c.chat.completions.create(model=name, messages=HELLO, max_tokens=12, temperature=0)
        want = engine_reply(engine, saves, name, HELLO, max_new_tokens=12, temperature=0.0)
        assert reply.choices[0].message.content == want and reply.model == name
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 12 and reply.usage.prompt_tokens > 5
        chunks = list(
            c.chat.completions.create(
                model=name,
                messages=HELLO,
                max_tokens=12,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == want
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "length"
        assert chunks[-1].usage.completion_tokens == 12
    # base and tuned differ: the model field picks the run
    texts = {
        c.chat.completions.create(model=n, messages=HELLO, max_tokens=12, temperature=0).choices[0].message.content
        for n in (BASE_PREFIX + str(tiny_model_dir), "lora-run")
    }
    assert len(texts) == 2


def test_sampling_settings_and_seed(api, saves):
    server, engine = api
    c = client(server)

    def ask(**kw):
        return (
            c.chat.completions.create(model="lora-run", messages=HELLO, max_tokens=10, **kw).choices[0].message.content
        )

    same = ask(temperature=1.2, top_p=0.95, seed=3)
    assert same == ask(temperature=1.2, top_p=0.95, seed=3)
    assert same == engine_reply(
        engine, saves, "lora-run", HELLO, max_new_tokens=10, temperature=1.2, top_p=0.95, seed=3
    )
    assert len({ask(temperature=1.2, seed=s) for s in range(4)}) > 1


def test_stop_strings_cut_the_reply_plain_and_streaming(api):
    server, _ = api
    c = client(server)
    full = (
        c.chat.completions.create(model="lora-run", messages=HELLO, max_tokens=24, temperature=0)
        .choices[0]
        .message.content
    )
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), full
    want = full[: full.index(stop)]
    reply = c.chat.completions.create(model="lora-run", messages=HELLO, max_tokens=24, temperature=0, stop=[stop])
    assert reply.choices[0].message.content == want and reply.choices[0].finish_reason == "stop"
    chunks = list(
        c.chat.completions.create(
            model="lora-run", messages=HELLO, max_tokens=24, temperature=0, stop=stop, stream=True
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == want
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completions_continue_raw_text_like_plain_generate(api, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    server, _ = api
    c = client(server)
    name, prompt = BASE_PREFIX + str(tiny_model_dir), "The lighthouse keeper"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    want = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    reply = c.completions.create(model=name, prompt=prompt, max_tokens=10, temperature=0)
    assert reply.choices[0].text == want and reply.object == "text_completion"
    streamed = "".join(
        ch.choices[0].text
        for ch in c.completions.create(model=name, prompt=prompt, max_tokens=10, temperature=0, stream=True)
    )
    assert streamed == want


def test_concurrent_clients_each_get_their_own_answer(api, saves, tiny_model_dir):
    server, engine = api
    names = [BASE_PREFIX + str(tiny_model_dir), "lora-run", "lora-run/checkpoint-4", "lora-run"]
    prompts = [[{"role": "user", "content": f"Tell me about number {i}."}] for i in range(4)]
    want = [engine_reply(engine, saves, n, p, max_new_tokens=10, temperature=0.0) for n, p in zip(names, prompts)]

    def ask(i):
        chunks = client(server).chat.completions.create(
            model=names[i], messages=prompts[i], max_tokens=10, temperature=0, stream=i % 2 == 0
        )
        if i % 2:
            return chunks.choices[0].message.content
        return "".join(ch.choices[0].delta.content or "" for ch in chunks)

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(ask, range(4)))
    assert got == want
    assert len(engine.cached_keys()) == 1  # one copy of the base for the base and both adapters


def test_reward_model_scores_responses(api, saves):
    from workbench.preference import RewardModel

    server, _ = api
    prompt, good, bad = PAIRS[0]
    answer = client(server).post(
        "/score", cast_to=object, body={"model": "rm", "prompt": prompt, "responses": [good, bad]}
    )
    reference = RewardModel(saves / "rm")
    assert [d["score"] for d in answer["data"]] == pytest.approx(
        [reference.score(prompt, good), reference.score(prompt, bad)], abs=1e-4
    )


def test_errors_are_openai_shaped(api, tiny_model_dir):
    server, _ = api
    c = client(server)
    with pytest.raises(openai.NotFoundError) as err:
        c.chat.completions.create(model="no-such-run", messages=HELLO)
    assert err.value.body["code"] == "model_not_found"
    assert "lora-run/checkpoint-4" in err.value.message and "rm" in err.value.message
    with pytest.raises(openai.BadRequestError, match="reward model"):
        c.chat.completions.create(model="rm", messages=HELLO)
    with pytest.raises(openai.BadRequestError, match="not a reward model"):
        c.post("/score", cast_to=object, body={"model": "lora-run", "prompt": "hi", "responses": ["a"]})
    for bad, param in (
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"stop": [1]}, "stop"),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            c.chat.completions.create(model="lora-run", messages=HELLO, **bad)
        assert err.value.body["param"] == param, bad
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="lora-run", messages=[{"role": "wizard", "content": "x"}])
    assert "role" in err.value.message
    with pytest.raises(openai.BadRequestError):
        c.completions.create(model="lora-run", prompt="")
    import httpx

    raw = httpx.post(server.url + "/chat/completions", content=b"{not json", timeout=30)
    assert raw.status_code == 400 and "not JSON" in raw.json()["error"]["message"]
    assert httpx.get(server.url + "/nothing-here", timeout=30).json()["error"]["type"] == "not_found_error"
    # the server is still up
    assert c.models.list().data


def test_api_key_is_required_when_set_and_for_other_hosts(saves, tiny_model_dir):
    server, _ = start(saves, tiny_model_dir, api_key="s3cret")
    try:
        with pytest.raises(openai.AuthenticationError) as err:
            client(server, "wrong").models.list()
        assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
        assert client(server, "s3cret").models.list().data
    finally:
        server.close()
    with pytest.raises(ValueError, match="API key"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "key")
    out = run_cli("serve", "--host", "0.0.0.0", "--port", "1", env={"WORKBENCH_API_KEY": ""})
    assert out.returncode == 2 and "API key" in out.stderr


def test_snippets_call_the_selected_model():
    curl, python = snippets("http://127.0.0.1:8000/v1", "lora-run/checkpoint-4")
    assert "http://127.0.0.1:8000/v1/chat/completions" in curl and '"model": "lora-run/checkpoint-4"' in curl
    assert "OpenAI(base_url='http://127.0.0.1:8000/v1'" in python and "model='lora-run/checkpoint-4'" in python
    compile(python, "snippet", "exec")


def test_the_chat_tab_shows_the_snippets_for_model_a(tmp_path):
    from workbench.ui.app import create_app
    from workbench.ui.chat_tab import api_snippets

    app = create_app(lang="en", saves=tmp_path, allow_local_models=True)
    codes = {
        c.elem_id: c.value for c in app.blocks.values() if (getattr(c, "elem_id", None) or "").startswith("chat-api-")
    }
    assert codes["chat-api-curl"].startswith("curl http://127.0.0.1:8000/v1/chat/completions")
    assert "from openai import OpenAI" in codes["chat-api-python"]
    curl, python = api_snippets("my-run/checkpoint-2")
    assert '"model": "my-run/checkpoint-2"' in curl and "model='my-run/checkpoint-2'" in python


def test_a_client_that_goes_away_mid_stream_frees_the_queue(api):
    import httpx

    server, engine = api
    body = {"model": "lora-run", "messages": HELLO, "max_tokens": 400, "temperature": 0, "stream": True}
    with httpx.stream("POST", server.url + "/chat/completions", json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                break  # hang up after the first piece
    reply = client(server).chat.completions.create(model="lora-run", messages=HELLO, max_tokens=4, temperature=0)
    assert reply.usage.completion_tokens == 4
