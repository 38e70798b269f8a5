"""Benchmark `workbench serve` against the Chat engine and plain `model.generate`; prints JSON.

latency/throughput: time to the first token and tokens/s of (a) plain `model.generate`, (b) the
    chat engine's stream, (c) the API streamed through the official `openai` client, same model,
    prompt and greedy settings, alternated in one process; then 4 concurrent API clients
    (they queue: one generation at a time) against 4 engine replies one after another.
memory: peak RSS of a fresh process serving base + 3 LoRA runs (one request each) against one
    serving the base only.

python scripts/bench_serve.py [--tokens 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_chat import PROMPT, default_model, make_lora_run, settings


def start_server(saves: Path, model_dir: str, engine=None):
    import uvicorn

    from workbench.serve import build_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build_app(saves, model_dir, engine=engine), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def api_stream(url: str, model: str, tokens: int) -> tuple[float, int, float]:
    """(seconds to the first token, tokens, total seconds) of one streamed API reply."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
    started, first, usage = time.perf_counter(), None, None
    for chunk in client.chat.completions.create(
        model=model,
        messages=PROMPT,
        max_tokens=tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        usage = chunk.usage or usage
    return first, usage.completion_tokens, time.perf_counter() - started


def latency_and_throughput(model_dir: str, saves: Path, tokens: int, rounds: int) -> dict:
    import torch
    from transformers import TextIteratorStreamer  # noqa: F401 - plain side below uses none

    from workbench.chat import BASE_PREFIX, ChatEngine, resolve_target

    engine = ChatEngine()
    name = BASE_PREFIX + model_dir
    target = resolve_target(name, saves)
    loaded = engine._load(target)
    model, tokenizer = loaded.model, loaded.tokenizer
    gen = settings(tokens)
    gen.top_k = 0  # what the API sends (no top-k in OpenAI's fields); greedy either way
    inputs, _ = engine.prompt_ids(tokenizer, PROMPT, gen)
    server, url = start_server(saves, model_dir, engine)

    class FirstToken:
        """A minimal streamer: notes when the first new token arrives."""

        def __init__(self):
            self.calls, self.first = 0, None

        def put(self, value):
            self.calls += 1
            if self.calls == 2 and self.first is None:
                self.first = time.perf_counter()

        def end(self):
            pass

    def plain():
        mark = FirstToken()
        started = time.perf_counter()
        torch.manual_seed(gen.seed)
        with torch.inference_mode():
            out = model.generate(**inputs, **gen.generate_kwargs(), streamer=mark, pad_token_id=tokenizer.pad_token_id)
        return mark.first - started, out.shape[1] - inputs["input_ids"].shape[1], time.perf_counter() - started

    def ours():
        started, first, final = time.perf_counter(), None, None
        for final in engine.stream(target, PROMPT, gen):
            if first is None and final.tokens:
                first = time.perf_counter() - started
        return first, final.tokens, time.perf_counter() - started

    def api():
        return api_stream(url, name, tokens)

    sides = {"plain": plain, "engine": ours, "api": api}
    for fn in sides.values():
        fn()  # warm up
    rows = []
    for _ in range(rounds):
        for side, fn in sides.items():
            first, n, seconds = fn()
            rows.append({"side": side, "first_token_s": round(first, 4), "tokens": n, "seconds": round(seconds, 3)})

    def summary(side):
        mine = [r for r in rows if r["side"] == side]
        return {
            "first_token_s": round(sum(r["first_token_s"] for r in mine) / len(mine), 4),
            "tokens_per_s": round(sum(r["tokens"] for r in mine) / sum(r["seconds"] for r in mine), 2),
        }

    one = {side: summary(side) for side in sides}
    one["api_first_token_vs_engine"] = round(one["api"]["first_token_s"] / one["engine"]["first_token_s"], 3)
    one["api_tokens_per_s_vs_engine"] = round(one["api"]["tokens_per_s"] / one["engine"]["tokens_per_s"], 3)
    one["engine_tokens_per_s_vs_plain"] = round(one["engine"]["tokens_per_s"] / one["plain"]["tokens_per_s"], 3)

    # 4 clients at once (queued by the server) vs the same 4 replies from the engine in turn
    started = time.perf_counter()
    engine_four = [ours() for _ in range(4)]
    engine_wall = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        api_four = list(pool.map(lambda _: api(), range(4)))
    api_wall = time.perf_counter() - started
    four = {
        "engine_in_turn": {
            "tokens_per_s": round(sum(r[1] for r in engine_four) / engine_wall, 2),
            "mean_first_token_s": round(sum(r[0] for r in engine_four) / 4, 3),
        },
        "api_concurrent": {
            "tokens_per_s": round(sum(r[1] for r in api_four) / api_wall, 2),
            "mean_first_token_s_incl_queue": round(sum(r[0] for r in api_four) / 4, 3),
            "first_token_s_of_each": [round(r[0], 3) for r in api_four],
        },
    }
    four["api_tokens_per_s_vs_engine"] = round(
        four["api_concurrent"]["tokens_per_s"] / four["engine_in_turn"]["tokens_per_s"], 3
    )
    server.should_exit = True
    return {"one_client": one, "four_clients": four, "rounds": rows}


def memory_worker(saves: str, model_dir: str, adapters: int, tokens: int) -> dict:
    """Fresh process: serve the base and `adapters` LoRA runs, one request each, report peak RSS."""
    from workbench.chat import BASE_PREFIX, ChatEngine

    engine = ChatEngine()
    server, url = start_server(Path(saves), model_dir, engine)
    for name in [BASE_PREFIX + model_dir] + [f"bench-lora-{i}" for i in range(adapters)]:
        api_stream(url, name, tokens)
    server.should_exit = True
    return {
        "adapters": adapters,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "models_cached": len(engine.cached_keys()),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        saves, model_dir, adapters, tokens = args.worker
        print(json.dumps(memory_worker(saves, model_dir, int(adapters), int(tokens))))
        return 0
    load_at_start = os.getloadavg()
    model_dir = default_model()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        saves = Path(tmp)
        for i in range(3):
            make_lora_run(saves, model_dir)
            (saves / "bench-lora").rename(saves / f"bench-lora-{i}")
        memory = {}
        for adapters in (0, 3):
            done = subprocess.run(
                [sys.executable, __file__, "--worker", str(saves), model_dir, str(adapters), str(args.tokens)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            memory[adapters] = json.loads(done.stdout.strip().splitlines()[-1])
        result = {
            "model": model_dir,
            "max_new_tokens": args.tokens,
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 1) for x in load_at_start],
            "memory": {
                "base_only_peak_rss_mb": round(memory[0]["peak_rss_mb"], 1),
                "base_and_3_adapters_peak_rss_mb": round(memory[3]["peak_rss_mb"], 1),
                "ratio": round(memory[3]["peak_rss_mb"] / memory[0]["peak_rss_mb"], 3),
                "models_cached_with_3_adapters": memory[3]["models_cached"],
            },
            **latency_and_throughput(model_dir, saves, args.tokens, args.rounds),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
