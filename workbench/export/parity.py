"""Parity: does an export answer the way the trained model does?

After an export is written it is reloaded in the runtime it is meant for (transformers for merged
and adapter exports, transformers + bitsandbytes for 4/8-bit ones, llama.cpp for GGUF files) and
a fixed set of prompts (the run's held-out rows when it has them, else a built-in set) is replayed
greedily. It is compared with the trained model itself: the base in fp32 with the adapter applied
(not merged), or a full run's weights in fp32. The report says on how many prompts the first
answer token is the same, how much of the answers agree, and, for float exports, the largest
logit difference; it is flagged when that is beyond what the number format explains.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .common import ExportError
from .source import RunSource

PARITY_FILE = "parity.json"
N_PROMPTS = 5
NEW_TOKENS = 16
TOP_LOGPROBS = 5
MAX_PROMPT_TOKENS = 384
LLAMA_CPP_CONTEXT = 1024
BUILTIN_PROMPTS = (
    "Who are you?",
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Name three colours.",
    "How do I boil an egg?",
)

# What each number format is expected to keep, measured against the fp32 model: the share of
# prompts whose first answer token must be the same, and the largest logit (for GGUF: top-5
# log-probability) difference its rounding explains (None: quantized, not a float format).
TOLERANCE = {
    "fp32": (1.0, 0.05),
    "adapter": (1.0, 0.05),
    "fp16": (0.8, 1.0),
    "bf16": (0.6, 4.0),
    "int8": (0.6, None),
    "nf4": (0.4, None),
    "gguf-f16": (0.8, 1.0),
    "gguf-bf16": (0.6, 4.0),
    "gguf-q8_0": (0.6, None),
    "gguf-q5_0": (0.4, None),
    "gguf-q5_1": (0.4, None),
    "gguf-q4_0": (0.4, None),
    "gguf-q4_1": (0.4, None),
}


@dataclass
class ParityReport:
    kind: str
    number_format: str  # fp32 / bf16 / nf4 / gguf-q8_0 ...
    runtime: str  # what reloaded the export
    prompts_from: str  # "held-out rows (test)" or "built-in prompts"
    prompts: int = 0
    first_tokens_same: int = 0
    identical_answers: int = 0
    token_agreement: float = 0.0  # mean share of each answer before the first different token
    max_diff: float | None = None
    diff_measure: str = ""
    expected_first_tokens: int = 0
    expected_max_diff: float | None = None
    status: str = "ok"  # ok | beyond (flagged) | unchecked (no runtime here) | failed
    reason: str = ""
    details: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> str:
        if self.status == "unchecked":
            return f"parity not checked: {self.reason}"
        if self.status == "failed":
            return f"parity FAILED: the export did not reload and answer: {self.reason}"
        diff = f", largest {self.diff_measure} difference {self.max_diff:.3g}" if self.max_diff is not None else ""
        flag = "" if self.ok else f" — BEYOND what {self.number_format} explains ({self.reason})"
        return (
            f"parity ({self.runtime}, {self.prompts} {self.prompts_from}): first tokens same "
            f"{self.first_tokens_same}/{self.prompts}, identical answers {self.identical_answers}/"
            f"{self.prompts}, tokens agreeing {self.token_agreement:.0%}{diff}{flag}"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok, "summary": self.summary()}


def read_parity(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / PARITY_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def write_parity(folder: Path, report: ParityReport) -> None:
    (Path(folder) / PARITY_FILE).write_text(
        json.dumps(report.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8"
    )


# ---- prompts ---------------------------------------------------------------------------------
def parity_prompts(src: RunSource) -> tuple[list[list[dict]], str]:
    """Up to five conversations to replay: the run's held-out rows (test, then validation) when
    it has them, else the built-in prompts (saying why)."""
    why = "the run holds no rows out"
    try:
        from ..config import from_dict
        from ..evaluate import _splits, examples_of

        data = {k: v for k, v in src.config.items() if k != "output_dir"}
        splits = _splits(from_dict(data))
        for name, rows in (("test", splits.test), ("validation", splits.validation)):
            chats = [
                e.messages for e in examples_of([r for r in rows if r.get("kind") == "conversation"]) if e.messages
            ]
            if chats:
                return chats[:N_PROMPTS], f"held-out rows ({name})"
    except Exception as err:  # noqa: BLE001 - a dataset that no longer loads falls back to the built-in set
        why = f"its held-out rows did not load: {err}"
    return [[{"role": "user", "content": p}] for p in BUILTIN_PROMPTS], f"built-in prompts ({why})"


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = "\n".join(m["content"] for m in messages) + "\n"
    return tokenizer(text, add_special_tokens=not tokenizer.chat_template).input_ids[-MAX_PROMPT_TOKENS:]


def stop_ids(tokenizer) -> set[int]:
    from .gguf_file import special_token_ids

    ids = special_token_ids(tokenizer)
    return {ids[k] for k in ("eos", "eot") if k in ids}


# ---- transformers side -----------------------------------------------------------------------
def _no_grad(model):
    import torch

    # bitsandbytes' CPU kernels for very narrow layers (the test model) only run with grad on
    return torch.set_grad_enabled(bool(getattr(model, "is_quantized", False)))


def greedy(model, ids: list[int], stops: set[int], new_tokens: int = NEW_TOKENS) -> list[int]:
    """The model's greedy answer, through transformers' own generate (peft's prompt learning
    and the caches are its business)."""
    import torch

    if getattr(model, "is_quantized", False):
        return _greedy_by_hand(model, ids, stops, new_tokens)
    with _no_grad(model):
        out = model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=sorted(stops) or None,
            pad_token_id=next(iter(stops), 0),
        )
    return out[0, len(ids) :].tolist()


def _greedy_by_hand(model, ids: list[int], stops: set[int], new_tokens: int) -> list[int]:
    """Greedy decoding outside generate() (which turns grad off), for bitsandbytes models."""
    import torch

    answer: list[int] = []
    with _no_grad(model):
        while len(answer) < new_tokens:
            logits = model(input_ids=torch.tensor([ids + answer])).logits[0, -1].detach()
            answer.append(int(logits.argmax()))
            if answer[-1] in stops:
                break
    return answer


def answer_logits(model, ids: list[int], answer: list[int]):
    """Logits predicting each answer token, the answer given (teacher forcing)."""
    import torch

    with _no_grad(model):
        logits = model(input_ids=torch.tensor([ids + answer])).logits[0].detach().float()
    # prompt tuning puts its virtual tokens first: the answer is always at the end
    return logits[logits.shape[0] - len(answer) - 1 : logits.shape[0] - 1]


@dataclass
class Reference:
    prompts: list[list[int]]
    answers: list[list[int]]
    logits: list  # per prompt: [answer tokens, vocab] fp32
    prompts_from: str
    messages: list[list[dict]]


def reference_answers(src: RunSource, tokenizer, model=None) -> Reference:
    """The trained model's greedy answers and logits (fp32, adapter applied)."""
    from .source import load_reference

    model = model if model is not None else load_reference(src)
    chats, origin = parity_prompts(src)
    stops = stop_ids(tokenizer)
    prompts = [prompt_ids(tokenizer, chat) for chat in chats]
    answers = [greedy(model, ids, stops) for ids in prompts]
    logits = [answer_logits(model, ids, ans) for ids, ans in zip(prompts, answers)]
    return Reference(prompts, answers, logits, origin, chats)


def agreement(reference: list[int], other: list[int]) -> int:
    same = 0
    for a, b in zip(reference, other):
        if a != b:
            break
        same += 1
    return same


def _report(
    kind: str,
    number_format: str,
    runtime: str,
    ref: Reference,
    answers: list[list[int]],
    tokenizer,
    max_diff: float | None,
    diff_measure: str,
) -> ParityReport:
    first_share, diff_limit = TOLERANCE.get(number_format, (0.4, None))
    n = len(answers)
    report = ParityReport(
        kind,
        number_format,
        runtime,
        ref.prompts_from,
        prompts=n,
        diff_measure=diff_measure,
        expected_first_tokens=int(round(first_share * n + 1e-9)),
        expected_max_diff=diff_limit,
    )
    report.max_diff = None if max_diff is None else float(max_diff)
    shares = []
    for ids_ref, ids_exp, chat in zip(ref.answers, answers, ref.messages):
        same = agreement(ids_ref, ids_exp)
        report.first_tokens_same += int(bool(ids_ref) and bool(ids_exp) and ids_ref[0] == ids_exp[0])
        report.identical_answers += int(ids_ref == ids_exp)
        shares.append(same / max(len(ids_ref), len(ids_exp), 1))
        report.details.append(
            {
                "prompt": chat[-1]["content"][:200],
                "trained": tokenizer.decode(ids_ref, skip_special_tokens=True),
                "export": tokenizer.decode(ids_exp, skip_special_tokens=True),
                "tokens_agreeing": same,
            }
        )
    report.token_agreement = sum(shares) / max(len(shares), 1)
    problems = []
    if report.first_tokens_same < report.expected_first_tokens:
        problems.append(
            f"first tokens same on {report.first_tokens_same} of {n} prompts, "
            f"expected at least {report.expected_first_tokens}"
        )
    if diff_limit is not None and report.max_diff is not None and report.max_diff > diff_limit:
        problems.append(f"largest {diff_measure} difference {report.max_diff:.3g} > {diff_limit:g}")
    report.status = "beyond" if problems else "ok"
    report.reason = "; ".join(problems)
    return report


def check_transformers(kind: str, number_format: str, model, ref: Reference, tokenizer, runtime: str) -> ParityReport:
    stops = stop_ids(tokenizer)
    answers = [greedy(model, ids, stops) for ids in ref.prompts]
    float_format = TOLERANCE.get(number_format, (0, None))[1] is not None
    max_diff = None
    if float_format:
        max_diff = max(
            (
                float((answer_logits(model, ids, ans) - logits).abs().max())
                for ids, ans, logits in zip(ref.prompts, ref.answers, ref.logits)
                if ans
            ),
            default=0.0,
        )
    return _report(kind, number_format, runtime, ref, answers, tokenizer, max_diff, "logit")


# ---- llama.cpp side ------------------------------------------------------------------------
def llama_cpp_available() -> str | None:
    """The reason llama.cpp cannot be used here, or None when it can."""
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        return "llama.cpp is not installed here (pip install xllamacpp)"
    return None


def llama_cpp_server(gguf_path: Path, threads: int | None = None):
    """A llama.cpp server object (in this process, no port used by callers) for one GGUF file."""
    import os

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path)
    params.use_jinja = True
    params.n_ctx = LLAMA_CPP_CONTEXT
    params.n_parallel = 1
    params.warmup = False
    params.verbosity = -1
    params.cpuparams.n_threads = threads or max(1, min(4, os.cpu_count() or 1))
    try:
        return xllamacpp.Server(params)
    except Exception as err:  # noqa: BLE001 - llama.cpp refusing the file is the finding
        raise ExportError(f"llama.cpp cannot load {gguf_path.name}: {err}") from None


def llama_cpp_answer(server, messages: list[dict], chat: bool, prompt_text: str = "") -> tuple[list[int], list]:
    """llama.cpp's greedy answer as token ids, with each step's top log-probabilities."""
    request = {
        "max_tokens": NEW_TOKENS,
        "temperature": 0.0,
        "top_k": 1,
        "seed": 0,
        "cache_prompt": False,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "n_probs": TOP_LOGPROBS,
    }
    if chat:
        reply = server.handle_chat_completions({**request, "messages": messages})
    else:
        reply = server.handle_completions({**request, "prompt": prompt_text})
    if not isinstance(reply, dict) or "choices" not in reply:
        raise ExportError(f"llama.cpp did not answer: {str(reply)[:300]}")
    steps = ((reply["choices"][0].get("logprobs") or {}).get("content")) or []
    return [int(s["id"]) for s in steps], [s.get("top_logprobs") or [] for s in steps]


def check_gguf(gguf_path: Path, qtype: str, ref: Reference, tokenizer) -> ParityReport:
    import torch

    number_format = f"gguf-{qtype}"
    reason = llama_cpp_available()
    if reason:
        report = ParityReport("gguf", number_format, "llama.cpp", ref.prompts_from, status="unchecked", reason=reason)
        return report
    import xllamacpp

    server = llama_cpp_server(Path(gguf_path))
    answers, max_diff = [], 0.0
    try:
        for ids, ref_answer, ref_logits, chat in zip(ref.prompts, ref.answers, ref.logits, ref.messages):
            text = tokenizer.decode(ids, skip_special_tokens=False)
            answer, tops = llama_cpp_answer(server, chat, bool(tokenizer.chat_template), text)
            answers.append(answer)
            ref_logprobs = torch.log_softmax(ref_logits, dim=-1) if len(ref_logits) else ref_logits
            # compare the distributions while both have read the same text (up to the first difference)
            for step, top in enumerate(tops[: agreement(ref_answer, answer) + 1]):
                if step >= len(ref_logprobs):
                    break
                for entry in top:
                    max_diff = max(max_diff, abs(float(entry["logprob"]) - float(ref_logprobs[step, int(entry["id"])])))
    finally:
        del server
    float_format = TOLERANCE.get(number_format, (0, None))[1] is not None
    runtime = f"llama.cpp (xllamacpp {getattr(xllamacpp, '__version__', '?')})"
    return _report(
        "gguf",
        number_format,
        runtime,
        ref,
        answers,
        tokenizer,
        max_diff if float_format else None,
        f"top-{TOP_LOGPROBS} log-probability",
    )


def card_section(report: ParityReport | None) -> str:
    """The parity report as a model card section."""
    if report is None:
        return ""
    lines = ["## Parity with the trained model", "", report.summary() + ".", ""]
    if report.details:
        lines += ["| prompt | trained model | this export | tokens agreeing |", "|---|---|---|---|"]
        for row in report.details:
            cells = [
                str(row[k]).replace("|", "\\|").replace("\n", " ")[:120]
                for k in ("prompt", "trained", "export", "tokens_agreeing")
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
