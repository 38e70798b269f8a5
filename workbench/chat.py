"""Chat with the base model or any run/checkpoint, streaming; compare two side by side.

Models are loaded once and cached. A LoRA-family run is attached to its cached base as a named
adapter, and the base answers with the adapter switched off, so comparing base vs tuned holds
one copy of the base weights. Where switching off is not exact (PiSSA/OLoRA initialisation
rewrites the base weights) and for full/freeze runs, the tuned model is a separate copy.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from .config import DEFAULT_MODEL
from .data.templates import chat_template_for
from .train import FINAL_DIR, complete_checkpoints, saves_root

BASE_PREFIX = "base:"


@dataclass
class GenerationSettings:
    system_prompt: str = ""
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    seed: int = 42

    def generate_kwargs(self) -> dict:
        sample = self.temperature > 0
        kwargs = dict(max_new_tokens=self.max_new_tokens, do_sample=sample,
                      repetition_penalty=self.repetition_penalty)
        if sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs


@dataclass(frozen=True)
class Target:
    """What to talk to: a base model, optionally with an adapter or as a whole tuned model."""
    label: str
    base_model: str
    adapter_dir: str | None = None      # LoRA/IA3/prompt-tuning adapter folder
    model_dir: str | None = None        # a whole tuned model (full/freeze runs)
    quantization_bit: int | None = None
    exact_toggle: bool = True           # adapter off == base (False for PiSSA/OLoRA)


def run_config(run_dir: Path) -> dict:
    try:
        return yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}


def list_targets(root: Path | None = None, base_model: str = DEFAULT_MODEL) -> list[str]:
    """Target specs: the base, each run with a result, and each complete checkpoint."""
    root = Path(root or saves_root())
    specs = [BASE_PREFIX + base_model]
    if not root.is_dir():
        return specs
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (run_dir / FINAL_DIR).is_dir():
            specs.append(run_dir.name)
        specs += [f"{run_dir.name}/{c.name}" for c in reversed(complete_checkpoints(run_dir))]
    return specs


def resolve_target(spec: str, root: Path | None = None, quantization_bit: int | None | str = "run") -> Target:
    """A spec is 'base:<model>', '<run>' (its final result) or '<run>/checkpoint-N'."""
    if spec.startswith(BASE_PREFIX):
        quant = None if quantization_bit == "run" else quantization_bit
        return Target(label=spec, base_model=spec[len(BASE_PREFIX):], quantization_bit=quant)
    root = Path(root or saves_root())
    run_id, _, checkpoint = spec.partition("/")
    run_dir = root / run_id
    if not run_dir.is_dir() or "/" in checkpoint or ".." in spec:
        raise ValueError(f"no such run: {spec}")
    folder = run_dir / (checkpoint or FINAL_DIR)
    if not folder.is_dir():
        raise ValueError(f"{spec} has no saved result yet")
    cfg = run_config(run_dir)
    base = cfg.get("model_name_or_path", DEFAULT_MODEL)
    quant = cfg.get("quantization_bit") if quantization_bit == "run" else quantization_bit
    if (folder / "adapter_config.json").is_file():
        exact = not cfg.get("pissa_init", False)
        return Target(spec, base, adapter_dir=str(folder), quantization_bit=quant, exact_toggle=exact)
    return Target(spec, base, model_dir=str(folder), quantization_bit=quant)


class _Loaded:
    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.adapters: dict[str, str] = {}   # adapter name → folder
        self.lock = threading.Lock()         # one generation at a time per weights copy
        self.last_used = time.time()


class ChatEngine:
    """Loads, caches and releases models; streams replies. Thread-safe."""

    def __init__(self, max_models: int = 2):
        self.max_models = max_models
        self._models: dict[tuple, _Loaded] = {}
        self._lock = threading.Lock()

    # ---- loading ------------------------------------------------------------------------
    def _key(self, target: Target) -> tuple:
        if target.model_dir:
            return ("model", target.model_dir, target.quantization_bit)
        if target.adapter_dir and not target.exact_toggle:
            return ("own-base", target.adapter_dir, target.quantization_bit)
        return ("base", target.base_model, target.quantization_bit)

    def _load(self, target: Target) -> _Loaded:
        from . import models

        key = self._key(target)
        with self._lock:
            loaded = self._models.get(key)
            if loaded is None:
                self._evict_if_full()
                source = target.model_dir or target.base_model
                tokenizer = models.load_tokenizer(target.adapter_dir or source)
                model = models.load_causal_lm(source, quantization_bit=target.quantization_bit)
                model.eval()
                loaded = _Loaded(model, tokenizer)
                self._models[key] = loaded
            if target.adapter_dir:
                self._attach_adapter(loaded, target.adapter_dir)
            loaded.last_used = time.time()
            return loaded

    def _attach_adapter(self, loaded: _Loaded, adapter_dir: str) -> None:
        from peft import PeftModel

        name = adapter_name(adapter_dir)
        if name in loaded.adapters:
            return
        with loaded.lock:
            if isinstance(loaded.model, PeftModel):
                loaded.model.load_adapter(adapter_dir, adapter_name=name)
            else:
                loaded.model = PeftModel.from_pretrained(loaded.model, adapter_dir, adapter_name=name)
            loaded.model.eval()
            loaded.adapters[name] = adapter_dir

    def _evict_if_full(self) -> None:
        while len(self._models) >= self.max_models:
            oldest = min(self._models, key=lambda k: self._models[k].last_used)
            self._models.pop(oldest)
        import gc

        gc.collect()

    def release(self, keep: list[Target] | None = None) -> None:
        """Drop cached models not needed by the targets in `keep`."""
        wanted = {self._key(t) for t in keep or []}
        with self._lock:
            for key in [k for k in self._models if k not in wanted]:
                self._models.pop(key)
        import gc

        gc.collect()

    # ---- generation ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _activate(self, loaded: _Loaded, target: Target):
        """Hold the model's lock with the right adapter on (or all adapters off)."""
        from peft import PeftModel

        with loaded.lock:
            model = loaded.model
            if isinstance(model, PeftModel):
                if target.adapter_dir:
                    model.set_adapter(adapter_name(target.adapter_dir))
                    yield model
                else:
                    with model.disable_adapter():
                        yield model
            else:
                yield model

    def prompt_ids(self, tokenizer, messages: list[dict], settings: GenerationSettings):
        template, _ = chat_template_for(tokenizer, "auto")
        if settings.system_prompt.strip():
            messages = [{"role": "system", "content": settings.system_prompt}] + \
                       [m for m in messages if m["role"] != "system"]
        text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False, return_tensors="pt")

    def stream(self, target: Target, messages: list[dict], settings: GenerationSettings,
               stop: threading.Event | None = None) -> Iterator["StreamUpdate"]:
        """Yield the growing reply and tokens/s until done or `stop` is set."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        loaded = self._load(target)
        stop = stop or threading.Event()
        tokenizer = loaded.tokenizer
        inputs = self.prompt_ids(tokenizer, messages, settings)

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set()

        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs = dict(**inputs, **settings.generate_kwargs(), streamer=streamer,
                      stopping_criteria=StoppingCriteriaList([_Stop()]),
                      pad_token_id=tokenizer.pad_token_id)
        errors: list[BaseException] = []

        def work():
            try:
                with self._activate(loaded, target) as model:
                    torch.manual_seed(settings.seed)
                    with torch.inference_mode():
                        model.generate(**kwargs)
            except BaseException as err:  # noqa: BLE001 - surfaced to the caller below
                errors.append(err)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        started = time.time()
        thread.start()
        text, pieces = "", 0
        for piece in streamer:
            text += piece
            pieces += 1
            yield StreamUpdate(text, len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                               time.time() - started)
        thread.join()
        if errors:
            raise errors[0]
        yield StreamUpdate(text, len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                           time.time() - started, done=True)

    def reply(self, target: Target, messages: list[dict], settings: GenerationSettings) -> str:
        last = ""
        for update in self.stream(target, messages, settings):
            last = update.text
        return last


@dataclass
class StreamUpdate:
    text: str
    tokens: int
    seconds: float
    done: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def adapter_name(adapter_dir: str) -> str:
    """A peft adapter name for a folder (no dots: peft uses names in module paths)."""
    path = Path(adapter_dir)
    return f"{path.parent.name}__{path.name}".replace(".", "_")
