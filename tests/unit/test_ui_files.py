"""The dashboard's shipped files: every file a page or module names is shipped, and nothing needs inline script or
style (the pages' Content-Security-Policy would block it)."""

from __future__ import annotations

import re

import pytest

from draas_actors.ui import static_files

FILES = static_files()
PAGES = [name for name in FILES if name.endswith(".html")]
MODULES = [name for name in FILES if name.endswith(".js")]


def _text(name: str) -> str:
    return FILES[name][0].decode()


def test_the_pages_and_modules_are_shipped() -> None:
    assert {"index.html", "instance.html", "signin.html", "app.js", "api.js", "style.css"} <= set(FILES)


@pytest.mark.parametrize("page", PAGES)
def test_every_file_a_page_names_is_shipped_and_no_script_or_style_is_inline(page: str) -> None:
    html = _text(page)
    for path in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html):
        assert path.removeprefix("/ui/static/") in FILES, f"{page} names {path}"
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], "inline script"
    assert re.findall(r"\son[a-z]+=", html) == [], "inline event handler"
    assert "style=" not in html and "<style" not in html, "inline style"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_a_module_imports_is_shipped_and_nothing_is_fetched_from_elsewhere(module: str) -> None:
    code = _text(module)
    for name in re.findall(r'from\s+"\./([^"]+)"', code):
        assert name in FILES, f"{module} imports {name}"
    assert "http://" not in code and "https://" not in code
    assert "innerHTML" not in code and "eval(" not in code  # the DOM is built with elements and text nodes
