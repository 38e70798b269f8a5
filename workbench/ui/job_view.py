"""How a tab shows one job of the controller (evaluation, gallery): a bar, its status and one line."""

from __future__ import annotations

import html

from .. import locale


def job_html(view: dict | None, lang: str, elem: str) -> str:
    """The job's status as a bar and a line (empty when there is no job)."""
    if not view:
        return ""
    status = view["status"]
    fraction = float(view.get("fraction") or 0.0) if status != "finished" else 1.0
    word = locale.t(f"status.{status}", lang)
    message = html.escape(str(view.get("message") or ""))
    return (
        f"<div class='wb-progress' id='{elem}-job' data-status='{html.escape(status)}' "
        f"data-job='{html.escape(view['id'])}'>"
        f"<div class='wb-bar'><div class='wb-fill' style='width:{100 * fraction:.0f}%'></div></div>"
        f"<div class='wb-meta'>{html.escape(view['id'])}: {word} · {100 * fraction:.0f}%</div>"
        f"<div class='wb-msg'>{message}</div></div>"
    )


def view_key(view: dict | None) -> tuple:
    """What changes when the shown job moved on (an idle tick sends nothing)."""
    if not view:
        return ()
    return (view["id"], view["status"], round(view.get("fraction") or 0.0, 3), view.get("message"))
