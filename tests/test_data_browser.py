"""The Data tab in a real browser: upload a file, see the rows, the exact trained text with its
loss marks and the length histogram, switch "train on prompt", register it, refuse a bad file,
and the same page in Chinese."""

import json
import shutil

import pytest

from workbench.data.registry import SHIPPED_DIR

from browser import browser_page, running_app, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_upload_preview_register_and_refuse(tmp_path, default_model_dir):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    for name in ("dataset_info.json", "identity.json"):
        shutil.copy(SHIPPED_DIR / name, root / "data")
    saves = tmp_path / "saves"
    saves.mkdir()
    upload = tmp_path / "units.jsonl"
    upload.write_text(
        "".join(
            json.dumps({"question": f"Convert {i} km to metres.", "answer": f"{i} km is {i * 1000} m."}) + "\n"
            for i in range(1, 31)
        ),
        encoding="utf-8",
    )
    broken = tmp_path / "broken.json"
    broken.write_text(
        '[{"instruction": "a", "output": "b"}, {"instruction": "c", "output": ["x"]}, {"instruction": "d"}]'
    )

    with running_app(saves, root) as (url, _), browser_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Data").click()
        # the shipped dataset is previewed when the page opens, unasked
        wait_until(lambda: "train" in page.inner_text("#data-summary"), 120, what="the preview on open")
        assert "Workbench" in page.inner_text("#data-rows")
        # the column names differ from Alpaca's: map them, then upload
        page.locator("#data-columns textarea, #data-columns input").first.fill("instruction=question, output=answer")
        page.locator("#data-upload input[type=file]").set_input_files(str(upload))
        wait_until(lambda: "train 30" in page.inner_text("#data-summary"), 120, what="the preview summary")
        summary = page.inner_text("#data-summary")
        assert "train 30" in summary and "carry loss" in summary
        assert page.locator("#data-rows").inner_text().count("Convert") >= 10
        # the trained text: the reply carries loss, the prompt does not
        marked = page.locator("#data-trained mark.wb-loss")
        wait_until(lambda: marked.count() >= 1, 30, what="loss marks")
        assert "1 km is 1000 m." in marked.first.inner_text()
        assert "Convert 1 km" in page.locator("#data-trained .wb-none").first.inner_text()
        wait_until(
            lambda: page.locator("#data-histogram [aria-roledescription='bar']").count() >= 1, 30, what="histogram bars"
        )
        page.screenshot(path=str(tmp_path / "data-en.png"), full_page=True)

        # train on prompt too: every token carries loss
        page.locator("#data-train_on_prompt input").check()
        wait_until(lambda: page.locator("#data-trained .wb-none").count() == 0, 60, what="the prompt marked")
        assert "Convert 1 km" in page.locator("#data-trained mark.wb-loss").first.inner_text()

        # register it: it appears in the dataset lists
        page.locator("#data-name textarea, #data-name input").first.fill("units")
        page.click("#data-register")
        wait_until(lambda: "Registered" in page.inner_text("#data-upload-message"), 60, what="the register message")
        assert (root / "data" / "uploads" / "units.jsonl").is_file()
        registry = json.loads((root / "data" / "uploads" / "dataset_info.json").read_text())
        assert registry["units"]["format"] == "alpaca"

        # the registered file was copied into the dataset folder: the upload box is empty again
        clear = "#data-upload button[aria-label*='Clear'], #data-upload button[aria-label*='clear']"
        wait_until(lambda: page.locator(clear).count() == 0, 30, what="the upload box emptied")
        # a bad file: a clear message, nothing registered, the page keeps working
        page.locator("#data-columns textarea, #data-columns input").first.fill("")
        page.locator("#data-upload input[type=file]").set_input_files(str(broken))
        wait_until(lambda: "⚠️" in page.inner_text("#data-upload-message"), 60, what="the error message")
        message = page.inner_text("#data-upload-message")
        assert "broken.json" in message and "row 2" in message and "'output'" in message, message
        page.locator("#data-name textarea, #data-name input").first.fill("broken")
        page.click("#data-register")
        wait_until(lambda: "row 2" in page.inner_text("#data-upload-message"), 30, what="the refused register")
        assert set(json.loads((root / "data" / "uploads" / "dataset_info.json").read_text())) == {"units"}

        # the same page in Chinese
        page.get_by_text("简体中文").click()
        wait_until(lambda: "注册数据集" in page.locator("#data-register").inner_text(), 20, what="Chinese labels")
        page.locator("#data-dataset input").click()
        page.locator("ul[role=listbox] li", has_text="units").first.click()
        wait_until(
            lambda: (
                "计算损失" in page.inner_text("#data-summary")
                and "uploaded from units.jsonl" in page.inner_text("#data-summary")
            ),
            60,
            what="the Chinese summary",
        )
        wait_until(
            lambda: (
                page.locator("#data-histogram [aria-roledescription='bar']").count() >= 1
                and "processing" not in page.inner_text("body")
            ),
            60,
            what="the preview to settle",
        )
        page.screenshot(path=str(tmp_path / "data-zh.png"), full_page=True)

        # {{name}} is filled from the assistant-name field, which is also the run form's field
        page.locator("#data-dataset input").click()
        page.locator("ul[role=listbox] li", has_text="identity").first.click()
        wait_until(lambda: "Who the assistant is" in page.inner_text("#data-summary"), 60, what="the identity preview")
        name_box = page.locator("#data-identity_name textarea, #data-identity_name input").first
        name_box.fill("Ada Lovebot")
        name_box.press("Tab")
        wait_until(lambda: "Ada Lovebot" in page.inner_text("#data-trained"), 60, what="the name filled in")
        assert "{{name}}" not in page.inner_text("#data-trained")
        page.get_by_role("tab", name="训练").click()
        page.click("#train-preview")
        wait_until(
            lambda: "identity_name: Ada Lovebot" in page.inner_text("#train-command"),
            30,
            what="the run config to carry the name",
        )
