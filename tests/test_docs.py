"""Every ```python block of docs/*.md runs (blocks of one page share a namespace, in a temp dir)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_docs_have_examples():
    assert PAGES, "docs/ has no pages"
    assert sum(len(BLOCK.findall(p.read_text())) for p in PAGES) >= 3


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_doc_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(BLOCK.findall(page.read_text())):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block that failed
            raise AssertionError(f"{page.name} block {i} failed: {type(exc).__name__}: {exc}\n{code}") from exc
