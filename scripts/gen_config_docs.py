"""Write docs/config.md, the reference of every config key, from the field declarations.

python scripts/gen_config_docs.py           # rewrite docs/config.md
python scripts/gen_config_docs.py --check   # exit 1 when docs/config.md is out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from workbench import config

TARGET = Path(__file__).resolve().parent.parent / "docs" / "config.md"

INTRO = """# Config keys

Every key a run config (`workbench train CONFIG.yaml`, `--set key=value`, the Train tab's form)
accepts, grouped as the form groups them, with its default, its allowed values and its help text in
English and Chinese. Generated from the field declarations in `workbench/config.py` by
`python scripts/gen_config_docs.py`; a test fails when this page is out of date.
"""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _shown(value) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(_shown(v) for v in value) or "[]"
    return str(value)


def allowed_values(meta: dict) -> str:
    if meta.get("choices"):
        return " / ".join(f"`{_shown(c)}`" for c in meta["choices"])
    low, high = meta.get("min"), meta.get("max")
    if low is None and high is None:
        return ""
    left = "" if low is None else f"{'>' if meta.get('min_exclusive') else '≥'} {low}"
    right = "" if high is None else f"≤ {high}"
    return ", ".join(part for part in (left, right) if part)


def render() -> str:
    fields = dataclasses.fields(config.RunConfig)
    out = [INTRO]
    for group in config.GROUPS:
        rows = [f for f in fields if f.metadata.get("group") == group]
        if not rows:
            continue
        out.append(f"\n## {group}\n")
        out.append("| key | default | allowed | help | 说明 |")
        out.append("| --- | --- | --- | --- | --- |")
        for f in rows:
            meta = f.metadata
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append(
                "| `{}` | `{}` | {} | **{}**: {} | **{}**：{} |".format(
                    f.name,
                    _cell(_shown(default)),
                    _cell(allowed_values(meta)),
                    _cell(meta["label"]["en"]),
                    _cell(meta["help"]["en"]),
                    _cell(meta["label"]["zh"]),
                    _cell(meta["help"]["zh"]),
                )
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
