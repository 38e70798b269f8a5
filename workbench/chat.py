"""Chat with the base model or any run/checkpoint, streaming; compare two side by side.

Models are loaded once and cached. A LoRA-family run is attached to its cached base as a named
adapter, and the base answers with the adapter switched off, so comparing base vs tuned holds
one copy of the base weights. Where switching off is not exact (PiSSA/OLoRA initialisation
rewrites the base weights when the adapter loads) and for full/freeze runs, the tuned model is a
separate copy and the base stays clean. Generations run one at a time (a queue), each in its own
thread feeding a streamer, so a reply never mixes with another session's.
"""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .config import DEFAULT_MODEL
from .data.templates import chat_template_for
from .runs import BASE_PREFIX, FINAL_DIR, complete_checkpoints, read_config, resolve_run, saves_root


@dataclass
class GenerationSettings:
    system_prompt: str = ""
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    seed: int = 42

    def problems(self) -> list[str]:
        """What is wrong with these settings, each naming the setting."""
        found = []
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            found.append(f"max_new_tokens must be a whole number of at least 1, got {self.max_new_tokens!r}")
        if self.temperature is None or self.temperature < 0:
            found.append(f"temperature must be 0 (greedy) or more, got {self.temperature!r}")
        if self.top_p is None or not 0 < self.top_p <= 1:
            found.append(f"top_p must be above 0 and at most 1, got {self.top_p!r}")
        if self.top_k is None or self.top_k < 0:
            found.append(f"top_k must be 0 (off) or more, got {self.top_k!r}")
        if self.repetition_penalty is None or self.repetition_penalty <= 0:
            found.append(f"repetition_penalty must be above 0 (1 = off), got {self.repetition_penalty!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            found.append(f"seed must be a whole number of 0 or more, got {self.seed!r}")
        return found

    def check(self) -> GenerationSettings:
        problems = self.problems()
        if problems:
            raise ValueError("generation settings: " + "; ".join(problems))
        return self

    def generate_kwargs(self) -> dict:
        """Keyword arguments for `model.generate`; temperature 0 means greedy decoding."""
        sample = self.temperature > 0
        kwargs = dict(max_new_tokens=self.max_new_tokens, do_sample=sample, repetition_penalty=self.repetition_penalty)
        if sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return kwargs


# Adapter initialisations that rewrite the base weights when the adapter is loaded: switching
# such an adapter off does not give back the original base, so it gets a base copy of its own.
_BASE_REWRITING_INITS = ("pissa", "olora", "corda")
_PROMPT_LEARNING = ("PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING", "CPT")


@dataclass(frozen=True)
class Target:
    """What to talk to: a base model, optionally with an adapter or as a whole tuned model."""

    label: str
    base_model: str
    adapter_dir: str | None = None  # LoRA/IA3/prompt-tuning adapter folder
    model_dir: str | None = None  # a whole tuned model (full/freeze runs)
    quantization_bit: int | None = None
    exact_toggle: bool = True  # adapter off == base (False for PiSSA/OLoRA)
    peft_type: str | None = None  # LORA, IA3, PROMPT_TUNING, ...
    template: str = "auto"  # the run's chat template setting
    run_quantization_bit: int | None = None  # what the run trained with
    trust_remote_code: bool = False  # the model folder may run its own code when loaded

    @property
    def is_base(self) -> bool:
        return not self.adapter_dir and not self.model_dir


# ---- runs that do not generate text -------------------------------------------------------------
def not_generative_reason(run_dir: Path) -> str | None:
    """Why a run cannot chat, be evaluated on its replies or be exported as a text generator, or
    None when it can. Reward models (stage rm) and sequence classifiers (stage cls) end in a
    scoring head instead of the language-model head: loaded as a causal LM they would talk
    nonsense through a head they never trained."""
    run_dir = Path(run_dir)
    stage, name = read_config(run_dir).get("stage"), run_dir.name
    if stage == "rm":
        return (
            f"run {name} is a reward model (stage rm): it scores responses, it does not generate; "
            f"use `workbench reward --run {name}`"
        )
    if stage == "cls":
        return (
            f"run {name} is a sequence classifier (stage cls): it picks one of its labels for a text, "
            f"it does not generate; load its final/ folder with transformers' "
            f"AutoModelForSequenceClassification (and peft for an adapter)"
        )
    return None


def check_generative(run_dir: Path) -> None:
    """Raise ValueError naming the run and why, for a run that does not generate text."""
    reason = not_generative_reason(run_dir)
    if reason:
        raise ValueError(reason)


def list_targets(root: Path | None = None, base_model: str = DEFAULT_MODEL) -> list[str]:
    """Target specs: the default base, the base of each run, each run with a result, and each
    complete checkpoint (newest first). Runs that do not generate (reward models, classifiers)
    are left out."""
    root = Path(root or saves_root())
    bases, runs = [BASE_PREFIX + base_model], []
    if not root.is_dir():
        return bases
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not_generative_reason(run_dir):
            continue
        found = [f"{run_dir.name}/{c.name}" for c in reversed(complete_checkpoints(run_dir))]
        if (run_dir / FINAL_DIR).is_dir():
            found.insert(0, run_dir.name)
        if found:
            runs += found
            run_base = BASE_PREFIX + str(read_config(run_dir).get("model_name_or_path") or base_model)
            if run_base not in bases:
                bases.append(run_base)
    return bases + runs


BEST_MARK = " ★ best"


def best_checkpoint(run_dir: Path) -> str | None:
    """The checkpoint that validated best (trainer_state.json's best_model_checkpoint), if tracked."""
    checkpoints = complete_checkpoints(Path(run_dir))
    if not checkpoints:
        return None
    try:
        state = json.loads((checkpoints[-1] / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    best = state.get("best_model_checkpoint") if isinstance(state, dict) else None
    return Path(best).name if isinstance(best, str) and best else None


def final_is_best(run_dir: Path) -> bool:
    """Whether final/ holds the best checkpoint's weights (load_best_model_at_end)."""
    return bool(read_config(Path(run_dir)).get("load_best_model_at_end")) and best_checkpoint(run_dir) is not None


def labelled_choices(specs: list[str], root: Path | None = None) -> list[tuple[str, str]]:
    """(label, spec) pairs for pickers: the best checkpoint of a run (and its final/, when that
    holds the best weights) carries a mark."""
    root = Path(root or saves_root())
    best: dict[str, str | None] = {}
    out = []
    for spec in specs:
        run_id, _, checkpoint = spec.partition("/")
        if spec.startswith(BASE_PREFIX) or not run_id:
            out.append((spec, spec))
            continue
        if run_id not in best:
            best[run_id] = best_checkpoint(root / run_id)
        marked = best[run_id] is not None and (
            checkpoint == best[run_id] or (not checkpoint and final_is_best(root / run_id))
        )
        out.append((spec + BEST_MARK if marked else spec, spec))
    return out


def _adapter_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def resolve_target(spec: str, root: Path | None = None, quantization_bit: int | None | str = "run") -> Target:
    """A spec is 'base:<model>', '<run>' (its final result) or '<run>/checkpoint-N'.

    quantization_bit: "run" (the run's own; none for the base), None, 4 or 8."""
    if quantization_bit not in ("run", None, 4, 8):
        raise ValueError(f"quantization must be run, none, 4 or 8, got {quantization_bit!r}")
    if spec.startswith(BASE_PREFIX):
        quant = None if quantization_bit == "run" else quantization_bit
        return Target(label=spec, base_model=spec[len(BASE_PREFIX) :], quantization_bit=quant)
    ref = resolve_run(spec, root)
    run_dir = ref.run_dir
    if (
        not ref.checkpoint
        and not (run_dir / "config.yaml").is_file()
        and ((run_dir / "adapter_config.json").is_file() or (run_dir / "config.json").is_file())
    ):
        # a plain PEFT adapter (or model) folder, not one of this project's runs: its base is
        # the one its adapter_config.json names
        quant = None if quantization_bit == "run" else quantization_bit
        return folder_target(run_dir, quantization_bit=quant)
    check_generative(run_dir)
    folder = ref.folder
    if not ref.checkpoint and (run_dir / "adapter_config.json").is_file():
        folder = run_dir  # a plain adapter folder, not made by a run
    if not folder.is_dir():
        raise ValueError(f"{spec} has no saved result yet")
    cfg = read_config(run_dir)
    base = str(cfg.get("model_name_or_path") or DEFAULT_MODEL)
    run_quant = cfg.get("quantization_bit")
    quant = run_quant if quantization_bit == "run" else quantization_bit
    common = dict(
        quantization_bit=quant,
        template=cfg.get("template") or "auto",
        run_quantization_bit=run_quant,
        trust_remote_code=bool(cfg.get("trust_remote_code", False)),
    )
    if (folder / "adapter_config.json").is_file():
        adapter = _adapter_config(folder)
        init = adapter.get("init_lora_weights")
        rewrites = isinstance(init, str) and init.lower().startswith(_BASE_REWRITING_INITS)
        if folder == run_dir and not cfg:  # a plain adapter folder names its own base model
            base = str(adapter.get("base_model_name_or_path") or DEFAULT_MODEL)
        return Target(
            spec,
            base,
            adapter_dir=str(folder),
            exact_toggle=not (rewrites or cfg.get("pissa_init", False)),
            peft_type=str(adapter.get("peft_type") or "LORA").upper(),
            **common,
        )
    if not (folder / "config.json").is_file():
        raise ValueError(f"{spec}: {folder} holds neither an adapter nor a model")
    return Target(spec, base, model_dir=str(folder), **common)


def folder_target(
    folder: str | Path, base_model: str | None = None, template: str = "auto", quantization_bit: int | None = None
) -> Target:
    """A target for any adapter or model folder, not only this project's runs: a plain PEFT
    adapter folder (its base from `base_model`, else from its adapter_config.json), a run folder
    (its final result) or a whole model folder."""
    folder = Path(folder).expanduser()
    if (folder / FINAL_DIR).is_dir() and not (folder / "adapter_config.json").is_file():
        folder = folder / FINAL_DIR
    if (folder / "adapter_config.json").is_file():
        adapter = _adapter_config(folder)
        base = base_model or adapter.get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{folder}: the adapter does not say its base model; give model_name_or_path")
        init = adapter.get("init_lora_weights")
        rewrites = isinstance(init, str) and init.lower().startswith(_BASE_REWRITING_INITS)
        return Target(
            str(folder),
            base,
            adapter_dir=str(folder),
            quantization_bit=quantization_bit,
            exact_toggle=not rewrites,
            template=template,
            peft_type=str(adapter.get("peft_type") or "LORA").upper(),
        )
    if (folder / "config.json").is_file():
        return Target(
            str(folder), str(folder), model_dir=str(folder), quantization_bit=quantization_bit, template=template
        )
    raise ValueError(f"{folder} holds neither a PEFT adapter (adapter_config.json) nor a model (config.json)")


def resolve_pair(
    left: str, right: str | None, root: Path | None = None, quantization_bit: int | None | str = "run"
) -> tuple[Target, Target | None]:
    """Targets for a compare view. A base compared against a run of that base gets the run's
    chat template (the very same prompt text) and, with "run" quantization, the run's
    quantization: the fair comparison, and one shared base copy."""
    a = resolve_target(left, root, quantization_bit)
    b = resolve_target(right, root, quantization_bit) if right else None
    if b is not None:
        a, b = _match_base(a, b, quantization_bit), _match_base(b, a, quantization_bit)
    return a, b


def _match_base(target: Target, other: Target, quantization_bit) -> Target:
    if target.is_base and not other.is_base and other.base_model == target.base_model:
        quant = other.quantization_bit if quantization_bit == "run" else target.quantization_bit
        return replace(target, quantization_bit=quant, template=other.template)
    return target


class _Loaded:
    def __init__(self, model, tokenizer, family: str):
        self.model = model
        self.tokenizer = tokenizer
        self.family = family  # which adapter kind it can hold (peft mixes none)
        self.adapters: dict[str, str] = {}  # adapter name → folder
        self.last_used = time.time()


@dataclass
class StreamUpdate:
    text: str
    tokens: int
    seconds: float
    done: bool = False
    queued: bool = False  # waiting for another generation to finish
    template_fallback: bool = False  # the model has no chat template: the plain one is used
    prompt_tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class ChatEngine:
    """Loads, caches and releases models; streams replies. Thread-safe.

    One generation runs at a time (a queue): adapters are switched on a shared model, the seed
    lives in torch's global generator, and two generations on a 2-core CPU only slow each other."""

    def __init__(self, max_models: int = 2):
        self.max_models = max_models
        self._models: dict[tuple, _Loaded] = {}
        self._lock = threading.Lock()  # guards the cache
        self._busy = threading.Lock()  # held while a model generates or is changed
        self._selected: dict[str, list[Target]] = {}  # session → what it has selected

    # ---- loading ------------------------------------------------------------------------
    def _key(self, target: Target) -> tuple:
        if target.model_dir:
            return ("model", target.model_dir, target.quantization_bit)
        if target.adapter_dir and not target.exact_toggle:
            return ("own-base", target.adapter_dir, target.quantization_bit)
        family = _family(target.peft_type)
        if target.is_base:
            # the base is any shared copy of these weights with its adapters switched off
            for key in self._models:
                if key[:3] == ("shared", target.base_model, target.quantization_bit):
                    return key
        return ("shared", target.base_model, target.quantization_bit, family)

    def cached_keys(self) -> list[tuple]:
        with self._lock:
            return list(self._models)

    def _load(self, target: Target) -> _Loaded:
        from . import models

        with self._lock:
            key = self._key(target)
            loaded = self._models.get(key)
            if loaded is None:
                self._evict_for_new()
                source = target.model_dir or target.base_model
                tokenizer = models.load_tokenizer(_tokenizer_source(target), target.trust_remote_code)
                model = models.load_causal_lm(
                    source, quantization_bit=target.quantization_bit, trust_remote_code=target.trust_remote_code
                )
                model.eval()
                _keep_4bit_weights_unpacked(model)
                loaded = _Loaded(model, tokenizer, key[3] if key[0] == "shared" else key[0])
                self._models[key] = loaded
            loaded.last_used = time.time()
        if target.adapter_dir:
            self._attach_adapter(loaded, target.adapter_dir)
        return loaded

    def _attach_adapter(self, loaded: _Loaded, adapter_dir: str) -> None:
        from peft import PeftModel

        name = adapter_name(adapter_dir)
        if name in loaded.adapters:
            return
        with self._busy:  # never change a model another thread is generating with
            if name in loaded.adapters:
                return
            if isinstance(loaded.model, PeftModel):
                loaded.model.load_adapter(adapter_dir, adapter_name=name)
            else:
                loaded.model = PeftModel.from_pretrained(loaded.model, adapter_dir, adapter_name=name)
            loaded.model.eval()
            loaded.adapters[name] = adapter_dir

    def _evict_for_new(self) -> None:
        """Make room for one more model: drop the least recently used ones."""
        while self._models and len(self._models) >= self.max_models:
            oldest = min(self._models, key=lambda k: self._models[k].last_used)
            self._models.pop(oldest)
        gc.collect()

    def release(self, keep: list[Target] | None = None) -> None:
        """Drop cached models not needed by the targets in `keep`."""
        with self._lock:
            wanted = {self._key(t) for t in keep or []}
            for key in [k for k in self._models if k not in wanted]:
                self._models.pop(key)
        gc.collect()

    def select(self, session: str, targets: list[Target]) -> None:
        """Record what a browser session has selected; release what no session selects.

        A model still generating stays alive until it finishes (the generation holds it)."""
        with self._lock:
            self._selected[session] = list(targets)
        self.release([t for chosen in list(self._selected.values()) for t in chosen])

    def forget(self, session: str) -> None:
        """A session left: release what only it had selected."""
        with self._lock:
            self._selected.pop(session, None)
        self.release([t for chosen in list(self._selected.values()) for t in chosen])

    # ---- generation ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _activate(self, loaded: _Loaded, target: Target):
        """The model with the right adapter on (or all adapters off). Hold `_busy` around it."""
        from peft import PeftModel

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

    def prompt_ids(self, tokenizer, messages: list[dict], settings: GenerationSettings, template: str = "auto"):
        """(token ids of the prompt, whether the plain fallback template was used)."""
        chosen, fallback = chat_template_for(tokenizer, template)
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        if settings.system_prompt.strip():
            messages = [{"role": "system", "content": settings.system_prompt}] + [
                m for m in messages if m["role"] != "system"
            ]
        text = tokenizer.apply_chat_template(messages, chat_template=chosen, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False, return_tensors="pt"), fallback

    def uses_fallback_template(self, target: Target) -> bool:
        return chat_template_for(self._load(target).tokenizer, target.template)[1]

    @contextlib.contextmanager
    def exclusive(self):
        """Hold the generation queue: for other work on a model (scoring) that must not overlap."""
        with self._busy:
            yield

    def stream(
        self,
        target: Target,
        messages: list[dict],
        settings: GenerationSettings,
        stop: threading.Event | None = None,
        prompt: str | None = None,
    ) -> Iterator[StreamUpdate]:
        """Yield the growing reply and tokens/s until done or `stop` is set.

        `prompt`, when given, is continued as raw text (no chat template; `messages` are ignored).
        Closing the iterator early (a browser that went away) also ends the generation."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        settings.check()
        loaded = self._load(target)
        stop = stop or threading.Event()
        halt = threading.Event()  # set when the consumer goes away
        tokenizer = loaded.tokenizer
        if prompt is None:
            inputs, fallback = self.prompt_ids(tokenizer, messages, settings, target.template)
        else:
            inputs, fallback = tokenizer(prompt, return_tensors="pt"), False
        prompt_tokens = int(inputs["input_ids"].shape[1])

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return stop.is_set() or halt.is_set()

        tokens = _TokenStream()
        kwargs = dict(
            **inputs,
            **settings.generate_kwargs(),
            streamer=tokens,
            stopping_criteria=StoppingCriteriaList([_Stop()]),
            pad_token_id=tokenizer.pad_token_id,
        )
        errors: list[BaseException] = []

        def work():
            try:
                with self._activate(loaded, target) as model, torch.inference_mode():
                    torch.manual_seed(settings.seed)
                    model.generate(**kwargs)
            except BaseException as err:  # noqa: BLE001 - surfaced to the caller below
                errors.append(err)
            finally:
                tokens.end()

        waited = time.time()
        while not self._busy.acquire(timeout=0.1):  # queue behind other generations
            if stop.is_set():
                yield StreamUpdate("", 0, 0.0, done=True, template_fallback=fallback)
                return
            if time.time() - waited > 0.3:
                yield StreamUpdate("", 0, 0.0, queued=True, template_fallback=fallback)
                waited = float("inf")
        finished = None
        try:
            started = time.time()
            finished = self._worker().submit(work)
            text, shown = "", 0
            while True:
                ids, done = tokens.wait(shown)
                if len(ids) > shown:
                    shown = len(ids)
                    # decoded here, off the generating thread, once for however many tokens arrived
                    text = tokenizer.decode(ids, skip_special_tokens=True)
                    if not done:
                        yield StreamUpdate(
                            text.rstrip("\ufffd"),
                            shown,
                            time.time() - started,
                            template_fallback=fallback,
                            prompt_tokens=prompt_tokens,
                        )
                if done:
                    break
            finished.wait()
            if errors:
                raise errors[0]
            yield StreamUpdate(
                text, shown, time.time() - started, done=True, template_fallback=fallback, prompt_tokens=prompt_tokens
            )
        finally:
            halt.set()
            if finished is not None:
                finished.wait()
            self._busy.release()

    def _worker(self) -> _Worker:
        """The one thread that runs generations: kept alive so its thread pools and caches stay warm."""
        with self._lock:
            if getattr(self, "_generator_thread", None) is None:
                self._generator_thread = _Worker()
            return self._generator_thread

    def reply(self, target: Target, messages: list[dict], settings: GenerationSettings) -> str:
        last = ""
        for update in self.stream(target, messages, settings):
            last = update.text
        return last


def _keep_4bit_weights_unpacked(model) -> None:
    """bitsandbytes repacks 4-bit weights for its CPU kernel on the first inference forward, and
    unpacks them again whenever a state dict is taken (peft does so when it attaches an adapter);
    the round trip is lossy, so the base would answer differently after an adapter was attached.
    Kept in the plain layout, the shared base stays exactly itself."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _family(peft_type: str | None) -> str:
    """Adapters of one family can share one PeftModel (peft does not mix tuner kinds)."""
    if not peft_type or peft_type == "LORA":
        return "LORA"
    return peft_type


def _tokenizer_source(target: Target) -> str:
    """The folder whose tokenizer to use: the run's result if it saved one, else the base's."""
    for folder in (target.adapter_dir, target.model_dir):
        if folder and (Path(folder) / "tokenizer_config.json").is_file():
            return folder
    for folder in (target.adapter_dir, target.model_dir):
        final = Path(folder).parent / FINAL_DIR if folder else None
        if final and (final / "tokenizer_config.json").is_file():
            return str(final)
    return target.base_model


class _TokenStream:
    """What `generate` streams into: the new token ids, kept as a list the reader decodes.

    The generating thread only appends and notifies (no decoding on its path); the reader wakes
    once for however many tokens arrived. Duck-types transformers' streamer (put/end)."""

    def __init__(self):
        self._ids: list[int] = []
        self._done = False
        self._prompt_seen = False
        self._changed = threading.Condition()

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate's first put is the prompt
            self._prompt_seen = True
            return
        new = value.reshape(-1).tolist()
        with self._changed:
            self._ids.extend(new)
            self._changed.notify()

    def end(self) -> None:
        with self._changed:
            self._done = True
            self._changed.notify()

    def wait(self, seen: int, timeout: float = 600) -> tuple[list[int], bool]:
        """(ids so far, whether generation ended) once there is more than `seen` or it ended."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._done or len(self._ids) > seen, timeout):
                raise TimeoutError(f"no token in {timeout:.0f} s")
            return list(self._ids), self._done


class _Worker:
    """One long-lived daemon thread running submitted jobs in order."""

    def __init__(self):
        import queue

        self._jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="chat-generate").start()

    def submit(self, job) -> threading.Event:
        finished = threading.Event()
        self._jobs.put((job, finished))
        return finished

    def _run(self) -> None:
        while True:
            job, finished = self._jobs.get()
            try:
                job()
            finally:
                finished.set()


def adapter_name(adapter_dir: str) -> str:
    """A peft adapter name for a folder (no dots: peft uses names in module paths)."""
    path = Path(adapter_dir)
    return f"{path.parent.name}__{path.name}".replace(".", "_")


def conversation_record(panes: list[tuple[str, list[dict]]], settings: GenerationSettings) -> dict:
    """The conversation as exported (JSON): each pane's model and messages, and the settings."""
    return {
        "format": "workbench-chat/1",
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": asdict(settings),
        "panes": [
            {"model": model, "messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
            for model, messages in panes
        ],
    }
