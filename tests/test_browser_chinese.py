"""The page in 简体中文: after the switch, every tab reads in Chinese, including what the core
says (the start message, job states, refusals, estimates). One browser session: switch, train
a few steps of the tiny model, visit the six tabs, and fail on any English word that is not a
name (models, datasets, keys, optimizers, formats, units, file names)."""

import re

import pytest

from browser import browser_page, running_app, set_value, wait_until
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TABS = {
    "训练": "body",
    "数据": "#tab-data",
    "对话": "#tab-chat",
    "导出": "#tab-export",
    "评估": "#tab-evaluate",
    "实验": "#tab-experiments",
}  # the train tab is checked with what is above the tabs
# names that stay as they are in every language
ALLOWED = {
    # the product, languages, organisations, libraries
    "workbench",
    "english",
    "hugging",
    "face",
    "hub",
    "bitsandbytes",
    "llama",
    "cpp",
    "openai",
    "smollm",
    "peft",
    # methods, stages, export kinds, templates, splits, optimizers: names the config and the CLI use
    "lora",
    "qlora",
    "dora",
    "sft",
    "dpo",
    "kto",
    "rm",
    "pt",
    "ppo",
    "grpo",
    "rloo",
    "orpo",
    "simpo",
    "full",
    "freeze",
    "bitfit",
    "head",
    "prefix",
    "adapter",
    "merged",
    "bnb",
    "gguf",
    "auto",
    "plain",
    "chatml",
    "run",
    "test",
    "validation",
    "preference",
    "kl",
    "serve",
    "uploads",
    "nothink",
    "adamw",
    "sgd",
    "adafactor",
    "lion",
    "blank",
    "line",
    "cosine",
    "linear",
    # data formats and their column names
    "alpaca",
    "sharegpt",
    "instruction",
    "input",
    "output",
    "system",
    "history",
    "messages",
    "conversations",
    "conversation",  # a row kind, like preference and kto
    "prompt",
    "completion",
    "chosen",
    "rejected",
    "label",
    "text",
    "tools",
    "name",
    "author",
    # file types, units, devices, metrics
    "json",
    "jsonl",
    "csv",
    "parquet",
    "txt",
    "yaml",
    "yml",
    "zip",
    "safetensors",
    "token",
    "tokens",
    "cpu",
    "gpu",
    "cuda",
    "mb",
    "gb",
    "gib",
    "mib",
    "kib",
    "kb",
    "ms",
    "eta",
    "id",
    "url",
    "api",
    "bleu",
    "rouge",
    "chrf",
    "ppl",
    # Gradio's own busy indicator (not translated by Gradio)
    "processing",
    # the shipped datasets
    "identity",
    "saves",
    "data",
}


def english_words(text: str) -> dict[str, str]:
    """Words of two or more Latin letters that are not names, each with where it stands; paths,
    keys (snake_case or dotted), file names, words with digits and allowed names are left out."""
    text = re.sub(r"\S*[/\\]\S*", " ", text)  # paths and URLs
    text = re.sub(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)+", " ", text)  # keys, file names, model ids
    found = {}
    for match in re.finditer(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]+(?![A-Za-z0-9])", text):
        word = match.group()
        if word.lower() not in ALLOWED and not any(c.isdigit() for c in word):
            found.setdefault(word, text[max(0, match.start() - 30) : match.end() + 30].replace("\n", " "))
    return found


# the contents of a dataset (its rows, the text as trained, its registered description) are data
# a dataset's own rows (their role-named columns too), its trained text and its description
DATA_SELECTORS = "#data-rows, #data-trained .wb-trained, #data-summary em"


def visible_text(page, selector: str) -> str:
    """The text a user sees in `selector`, without the contents of datasets."""
    return page.evaluate(
        """([selector, hidden]) => {
        const root = document.querySelector(selector);
        const nodes = [...root.querySelectorAll(hidden)];
        const before = nodes.map(n => n.style.display);
        nodes.forEach(n => { n.style.display = 'none'; });
        const text = root.innerText;
        nodes.forEach((n, i) => { n.style.display = before[i]; });
        return text;
    }""",
        [selector, DATA_SELECTORS],
    )


def test_every_tab_reads_in_chinese(tmp_path, tiny_model_dir):
    saves = tmp_path / "saves"
    saves.mkdir()
    # Gradio's own widget texts (an upload area's "Drop File Here") follow the browser's language
    with running_app(saves, ROOT) as (url, _), browser_page(locale="zh-CN") as page:
        page.goto(url)
        page.wait_for_selector("#train-start")
        # the Data tab's preview of the shipped dataset, drawn at page open, is there before the switch
        page.get_by_role("tab", name="Data").click()
        wait_until(lambda: page.inner_text("#data-summary").strip() != "", 120, what="the data preview")
        page.get_by_role("tab", name="Train").click()
        page.get_by_text("简体中文").click()
        wait_until(lambda: "可训练参数" in page.inner_text("#method-panel"), 60, what="the method panel in Chinese")
        model_box = page.locator("#field-model_name_or_path input")
        model_box.fill(str(tiny_model_dir))
        model_box.press("Enter")
        set_value(page, "#field-max_steps", "6")
        page.click("#train-start")
        wait_until(lambda: "已开始任务" in page.inner_text("#train-message"), 30, what="the start message in Chinese")
        wait_until(
            lambda: page.locator(".wb-progress[data-status='finished']").count() == 1, 300, what="the run to finish"
        )
        page.click("#train-abort")  # refused by the core: the run has already finished
        wait_until(lambda: "已完成" in page.inner_text("#train-message"), 30, what="the refusal in Chinese")

        found = {}
        for name, selector in TABS.items():
            page.get_by_role("tab", name=name).click()
            page.wait_for_timeout(1500)  # opening a tab refreshes its lists
            text = visible_text(page, selector)
            words = english_words(text)
            if words:
                found[name] = words
        assert not found, f"English words on the Chinese page: {found}"
