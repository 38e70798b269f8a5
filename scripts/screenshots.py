"""Refresh the screenshots in docs/: start the real page on a fresh saves folder, train a short
run, and photograph each of the six tabs in Chromium (Playwright).

    python scripts/screenshots.py                 # a tiny random model: fast, its chat is noise
    python scripts/screenshots.py --model default # the default model: real answers, slower

Writes docs/{train,data,chat,export,evaluate,experiments}-tab.png, each reduced to a 256-colour
palette so it stays small."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser import browser_page, pick_option, running_app, set_value, wait_until  # noqa: E402

TABS = ["train", "data", "chat", "export", "evaluate", "experiments"]


def tiny_model(folder: Path) -> Path:
    """A 2-layer random llama with the default model's tokenizer (trains in seconds)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from workbench.config import DEFAULT_MODEL
    from workbench.models import KNOWN_MODELS, ensure_embedded_cache

    tokenizer = AutoTokenizer.from_pretrained(ensure_embedded_cache(KNOWN_MODELS[DEFAULT_MODEL]))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_small(page, path: Path) -> None:
    """A viewport screenshot as a palette PNG (a UI has few colours: a fraction of the size)."""
    from PIL import Image

    raw = path.with_suffix(".raw.png")
    page.screenshot(path=str(raw))
    Image.open(raw).convert("RGB").quantize(colors=256).save(path, optimize=True)
    raw.unlink()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def open_tab(page, name: str) -> None:
    from workbench import locale

    page.get_by_role("tab", name=locale.t(f"tab.{name}")).click()
    page.wait_for_timeout(1500)  # opening a tab refreshes its lists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (default), 'default', or a model name/folder")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = str(tiny_model(tmp / "tiny-model")) if args.model == "tiny" else args.model
        saves = tmp / "saves"
        saves.mkdir()
        with running_app(saves, ROOT) as (url, _), browser_page(width=1400, height=1000) as page:
            page.goto(url)
            page.wait_for_selector("#train-start")
            if args.model != "default":
                box = page.locator("#field-model_name_or_path input")
                box.fill(model)
                box.press("Enter")
            set_value(page, "#field-max_steps", str(args.steps))
            page.click("#train-start")
            wait_until(
                lambda: page.locator(".wb-progress[data-status='finished']").count() == 1,
                1800,
                what="the run to finish",
            )
            run_id = next(p.name for p in saves.iterdir() if p.is_dir() and not p.name.startswith("."))
            page.locator("#train-progress").scroll_into_view_if_needed()
            page.mouse.wheel(0, -120)
            save_small(page, out / "train-tab.png")

            open_tab(page, "data")
            wait_until(lambda: page.inner_text("#data-summary").strip() != "", 120, what="the data preview")
            save_small(page, out / "data-tab.png")

            open_tab(page, "chat")
            pick_option(page, "#chat-right", run_id)
            page.locator("#chat-input textarea").fill("Who are you?")
            page.click("#chat-send")
            wait_until(
                lambda: (
                    "tokens/s" in page.inner_text("#chat-stats-a") and "tokens/s" in page.inner_text("#chat-stats-b")
                ),
                300,
                what="both panes to answer",
            )
            save_small(page, out / "chat-tab.png")

            open_tab(page, "export")
            save_small(page, out / "export-tab.png")

            open_tab(page, "evaluate")
            save_small(page, out / "evaluate-tab.png")

            open_tab(page, "experiments")
            if page.locator("#exp-show").count():
                page.click("#exp-show")
                page.wait_for_timeout(2000)
            save_small(page, out / "experiments-tab.png")


if __name__ == "__main__":
    main()
