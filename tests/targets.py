"""Tap targets of at least 44 px: what a page shows, measured in the browser."""

from __future__ import annotations

from typing import Any

SMALL = """(root) => [...document.querySelectorAll(
    `${root} a[href], ${root} button, ${root} input, ${root} select,`
    + ` ${root} textarea, ${root} summary`)]
  .filter((el) => el.getClientRects().length && !el.closest('[hidden]'))
  .filter((el) => {
    const target = el.type === 'checkbox' ? el.parentElement : el;
    return target.getBoundingClientRect().height < 43.5;
  })
  .map((el) => `${Math.round(el.getBoundingClientRect().height)} px: `
    + el.outerHTML.slice(0, 100))"""


def small_targets(page: Any, root: str = "main") -> list[str]:
    """Controls and links under `root` less than 44 px high (a checkbox counts with its row)."""
    return list(page.evaluate(SMALL, root))
