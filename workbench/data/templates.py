"""Canonical rows → the exact text and tokens the model trains on, with the loss mask.

The prompt/completion split is built here, not by trl: each assistant reply's span is found by
rendering the conversation up to that reply with and without it, so any chat template whose
renderings extend one another (ChatML, Llama 3, Qwen, ...) gets an exact mask.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
PLAIN_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'tool' %}{{ 'Tool: ' + message['content'] + '\n\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + eos_token + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)


# LLaMA-Factory writes every message with no formatting at all for its "empty" template
EMPTY_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{% if message['role'] == 'assistant' %}"
    "{{ eos_token }}{% endif %}{% endfor %}"
)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# LLaMA-Factory template name → (a marker the model's own template carries, the built-in
# template used when the tokenizer has none). Those names mean "this model's own format".
FAMILY_TEMPLATES: dict[str, tuple[str, str]] = {
    "llama3": ("<|start_header_id|>", LLAMA3_TEMPLATE),
    "llama4": ("<|header_start|>", PLAIN_TEMPLATE),
    "llama2": ("[INST]", PLAIN_TEMPLATE),
    "mistral": ("[INST]", PLAIN_TEMPLATE),
    "qwen": ("<|im_start|>", CHATML_TEMPLATE),
    "qwen2": ("<|im_start|>", CHATML_TEMPLATE),
    "qwen3": ("<|im_start|>", CHATML_TEMPLATE),
    "qwen3_5": ("<|im_start|>", CHATML_TEMPLATE),
    "smollm": ("<|im_start|>", CHATML_TEMPLATE),
    "smollm2": ("<|im_start|>", CHATML_TEMPLATE),
    "yi": ("<|im_start|>", CHATML_TEMPLATE),
    "gemma": ("<start_of_turn>", PLAIN_TEMPLATE),
    "gemma3": ("<start_of_turn>", PLAIN_TEMPLATE),
    "phi": ("<|end|>", PLAIN_TEMPLATE),
    "phi4": ("<|im_sep|>", PLAIN_TEMPLATE),
    "deepseek3": ("<｜Assistant｜>", PLAIN_TEMPLATE),
    "glm4": ("<|assistant|>", PLAIN_TEMPLATE),
    "zephyr": ("<|assistant|>", PLAIN_TEMPLATE),
}
NOTHINK_SUFFIX = "_nothink"


def base_template_name(name: str) -> tuple[str, bool]:
    """(name without _nothink, whether thinking stays on)."""
    if name.endswith(NOTHINK_SUFFIX):
        return name[: -len(NOTHINK_SUFFIX)], False
    return name, True


def _own_template(tokenizer) -> str | None:
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # several named templates: take the default one
        own = own.get("default") or next(iter(own.values()))
    return own or None


def chat_template_for(tokenizer, template: str = "auto", enable_thinking: bool = True) -> tuple[str, bool]:
    """(jinja template, whether it is a fallback because the tokenizer has none)."""
    name, thinking = base_template_name(template)
    chosen, fallback = _pick_template(tokenizer, name)
    if not (thinking and enable_thinking):
        chosen = without_thinking(chosen)
    return chosen, fallback


def _pick_template(tokenizer, name: str) -> tuple[str, bool]:
    if name == "chatml":
        return CHATML_TEMPLATE, False
    if name in ("plain", "default"):
        return PLAIN_TEMPLATE, False
    if name == "empty":
        return EMPTY_TEMPLATE, False
    own = _own_template(tokenizer)
    if own:
        return own, False
    if name in FAMILY_TEMPLATES:
        return FAMILY_TEMPLATES[name][1], False
    return PLAIN_TEMPLATE, True


def without_thinking(template: str) -> str:
    """The template with its thinking mode off, where it has one (Qwen3 reads enable_thinking)."""
    if "enable_thinking" not in template:
        return template
    return "{%- set enable_thinking = false -%}" + template


def template_warning(tokenizer, template: str) -> str | None:
    """A warning when a LLaMA-Factory template name disagrees with the model's own template."""
    name, thinking = base_template_name(template)
    own = _own_template(tokenizer)
    if name in FAMILY_TEMPLATES:
        marker = FAMILY_TEMPLATES[name][0]
        if own and marker not in own:
            return (
                f"template '{template}' names another model family than this model's own chat "
                f"template; the model's own template is used (set template: auto to silence this)"
            )
        if not own:
            return f"the tokenizer has no chat template: the built-in one for '{name}' is used"
    if not thinking and (own is None or "enable_thinking" not in own) and name not in ("chatml", "plain"):
        return f"template '{template}': this template has no thinking mode to turn off"
    return None


def render(
    tokenizer, messages: list[dict], template: str, add_generation_prompt: bool = False, tools: str | None = None
) -> str:
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if tools and "tools" not in template:
        # the template cannot show tools: put their description in the system turn
        note = f"You can call these tools:\n{tools}"
        if messages and messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + note}
        else:
            messages.insert(0, {"role": "system", "content": note})
        tools = None
    kwargs = {"tools": _tools_list(tools)} if tools else {}
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
    )


def _tools_list(tools: str):
    import json

    try:
        value = json.loads(tools)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, list) else [value]


@dataclass
class Segment:
    text: str
    trainable: bool


def conversation_segments(
    tokenizer,
    messages: list[dict],
    template: str,
    tools: str | None = None,
    train_on_prompt: bool = False,
    mask_history: bool = False,
) -> list[Segment]:
    """The rendered conversation cut into segments, assistant replies marked trainable (with
    mask_history only the last one)."""
    segments: list[Segment] = []
    done = ""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], template, add_generation_prompt=True, tools=tools)
        through = render(tokenizer, messages[: i + 1], template, tools=tools)
        if not (before.startswith(done) and through.startswith(before)):
            raise ValueError(
                "the chat template does not render conversations prefix by prefix; choose template 'chatml' or 'plain'"
            )
        if before[len(done) :]:
            segments.append(Segment(before[len(done) :], train_on_prompt))
        trains = message.get("train", True) and not (mask_history and i != last)
        segments.append(Segment(through[len(before) :], trains or train_on_prompt))
        done = through
    full = render(tokenizer, messages, template, tools=tools)
    if full[len(done) :]:
        segments.append(Segment(full[len(done) :], train_on_prompt))
    return segments


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def trainable_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def tokenize_segments(tokenizer, segments: list[Segment], cutoff_len: int) -> Tokenized:
    """Tokenize the whole text at once (so tokens are exactly those of the full text) and mark
    each token trainable when it starts inside a trainable segment."""
    text = "".join(s.text for s in segments)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans, position = [], 0
    for segment in segments:
        if segment.trainable:
            spans.append((position, position + len(segment.text)))
        position += len(segment.text)
    ids = encoded["input_ids"]
    labels = []
    for token_id, (start, _end) in zip(ids, encoded["offset_mapping"]):
        inside = any(lo <= start < hi for lo, hi in spans)
        labels.append(token_id if inside else IGNORE_INDEX)
    truncated = len(ids) > cutoff_len
    return Tokenized(ids[:cutoff_len], labels[:cutoff_len], truncated)


def tokenize_text(tokenizer, text: str, cutoff_len: int | None) -> Tokenized:
    """Raw text for continued pretraining: every token carries loss; EOS closes the document."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    truncated = cutoff_len is not None and len(ids) > cutoff_len
    if cutoff_len is not None:
        ids = ids[:cutoff_len]
    return Tokenized(ids, list(ids), truncated)


def prompt_and_answer(
    tokenizer, messages: list[dict], answer: str, template: str, tools: str | None = None
) -> tuple[str, str]:
    """(prompt text ending with the assistant header, answer text as the template closes it)."""
    prompt = render(tokenizer, messages, template, add_generation_prompt=True, tools=tools)
    full = render(tokenizer, messages + [{"role": "assistant", "content": answer}], template, tools=tools)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the answer after the prompt")
    return prompt, full[len(prompt) :]
