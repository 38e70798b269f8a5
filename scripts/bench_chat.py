"""Benchmark the chat engine on the default model; prints one JSON object.

memory:      peak resident memory of compare mode (base vs a LoRA run, one shared base copy)
             against single-model chat, each measured in a fresh subprocess (target <= 1.25x).
throughput:  tokens/s of the engine's streaming chat against plain `model.generate` with the
             same model, prompt and settings, alternated in one process (target >= 80%).

python scripts/bench_chat.py [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]


def default_model() -> str:
    from workbench.config import DEFAULT_MODEL
    from workbench.models import KNOWN_MODELS, ensure_embedded_cache

    return str(ensure_embedded_cache(KNOWN_MODELS[DEFAULT_MODEL]))


def make_lora_run(saves: Path, model_dir: str) -> None:
    """An untrained but non-zero LoRA adapter on every linear layer, saved like a finished run."""
    import torch
    import yaml
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    final = saves / "bench-lora" / "final"
    get_peft_model(model, config).save_pretrained(final)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(final)
    (saves / "bench-lora" / "config.yaml").write_text(
        yaml.safe_dump({"model_name_or_path": model_dir, "finetuning_type": "lora"}), encoding="utf-8"
    )


def settings(tokens: int):
    from workbench.chat import GenerationSettings

    # greedy, no repetition penalty: both sides produce exactly the same tokens
    return GenerationSettings(max_new_tokens=tokens, temperature=0.0, repetition_penalty=1.0)


def memory_worker(mode: str, saves: str, model_dir: str, tokens: int) -> dict:
    """Run in a fresh process: chat in `mode`, report the peak RSS."""
    from workbench.chat import BASE_PREFIX, ChatEngine, resolve_pair

    engine = ChatEngine()
    base, tuned = resolve_pair(BASE_PREFIX + model_dir, "bench-lora", Path(saves))
    targets = [base] if mode == "single" else [base, tuned]
    for target in targets:
        engine.reply(target, PROMPT, settings(tokens))
    return {
        "mode": mode,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "models_cached": len(engine.cached_keys()),
    }


def throughput(model_dir: str, saves: Path, tokens: int, rounds: int) -> dict:
    import torch

    from workbench.chat import BASE_PREFIX, ChatEngine, resolve_pair

    engine = ChatEngine()
    base, _ = resolve_pair(BASE_PREFIX + model_dir, "bench-lora", saves)
    loaded = engine._load(base)
    model, tokenizer = loaded.model, loaded.tokenizer  # the very same weights for both sides
    gen = settings(tokens)
    inputs, _ = engine.prompt_ids(tokenizer, PROMPT, gen)

    def plain() -> tuple[int, float]:
        started = time.perf_counter()
        torch.manual_seed(gen.seed)
        with torch.inference_mode():
            out = model.generate(**inputs, **gen.generate_kwargs(), pad_token_id=tokenizer.pad_token_id)
        return out.shape[1] - inputs["input_ids"].shape[1], time.perf_counter() - started

    def ours() -> tuple[int, float]:
        started = time.perf_counter()
        final = collections.deque(engine.stream(base, PROMPT, gen), maxlen=1)[0]  # the last update
        return final.tokens, time.perf_counter() - started

    plain(), ours()  # warm up both paths
    rows = []
    for _ in range(rounds):  # alternate so that load changes hit both sides alike
        for name, fn in (("plain", plain), ("engine", ours)):
            n, seconds = fn()
            rows.append({"side": name, "tokens": n, "seconds": round(seconds, 3)})
    rate = {
        side: sum(r["tokens"] for r in rows if r["side"] == side) / sum(r["seconds"] for r in rows if r["side"] == side)
        for side in ("plain", "engine")
    }
    return {
        "plain_tokens_per_s": round(rate["plain"], 2),
        "engine_tokens_per_s": round(rate["engine"], 2),
        "engine_vs_plain": round(rate["engine"] / rate["plain"], 3),
        "target_min": 0.8,
        "rounds": rows,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=4, metavar=("MODE", "SAVES", "MODEL", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        mode, saves, model_dir, tokens = args.worker
        print(json.dumps(memory_worker(mode, saves, model_dir, int(tokens))))
        return 0
    load_at_start = os.getloadavg()  # figures taken on a busy machine say little: show how busy
    model_dir = default_model()
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        saves = Path(tmp)
        make_lora_run(saves, model_dir)
        memory = {}
        for mode in ("single", "compare"):
            done = subprocess.run(
                [sys.executable, __file__, "--worker", mode, str(saves), model_dir, str(args.tokens)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            memory[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        ratio = memory["compare"]["peak_rss_mb"] / memory["single"]["peak_rss_mb"]
        result = {
            "model": model_dir,
            "max_new_tokens": args.tokens,
            "torch_threads": _threads(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 1) for x in load_at_start],
            "memory": {
                "single_peak_rss_mb": round(memory["single"]["peak_rss_mb"], 1),
                "compare_peak_rss_mb": round(memory["compare"]["peak_rss_mb"], 1),
                "compare_vs_single": round(ratio, 3),
                "target_max": 1.25,
                "models_cached_in_compare": memory["compare"]["models_cached"],
            },
            "throughput": throughput(model_dir, saves, args.tokens, args.rounds),
        }
    print(json.dumps(result, indent=2))
    return 0


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
