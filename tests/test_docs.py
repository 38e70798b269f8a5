"""The docs stay true to the code: the config reference is generated, the module map names real modules."""

import re
import subprocess
import sys

from conftest import ROOT


def test_config_reference_is_up_to_date():
    done = subprocess.run(
        [sys.executable, "scripts/gen_config_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_config_reference_lists_every_key_in_both_languages():
    import dataclasses

    from workbench.config import RunConfig

    page = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    for f in dataclasses.fields(RunConfig):
        assert f"| `{f.name}` |" in page
        assert f.metadata["label"]["zh"] in page


def test_architecture_map_names_modules_that_exist():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(.+?)\n```", page, flags=re.S).group(1)
    named = re.findall(r"^\s+([\w/]+\.py|[\w]+/)\s", block, flags=re.M)
    assert named
    missing = [name for name in named if not (ROOT / "workbench" / name).exists() and not (ROOT / name).exists()]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
