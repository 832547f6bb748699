"""The catalog's HTML, rendered from views by Jinja2 templates (autoescaped, StrictUndefined).

Links between catalog pages are relative (``root`` is the way up to the site's top), so the
same pages work served live and as a static site in any sub-folder. A page holds no time of
rendering: the same catalog and ledgers give the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from gefreg import __version__
from gefreg.serve.catalog_view import EntryView, VersionView

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_FILES = ("gefreg.css", "gefreg.js")
SITE_NAME = "gefreg catalog"


def filesize(value: int | float) -> str:
    size = float(value)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def link(url: str) -> Markup:
    """A link for http(s) URLs only; anything else (``javascript:``…) is shown as text."""
    if url.lower().startswith(("https://", "http://")):
        return Markup('<a href="{0}" rel="nofollow noopener">{0}</a>').format(url)
    return Markup("{0}").format(escape(url))


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters["filesize"] = filesize
    env.filters["link"] = link
    return env


def _render(template: str, root: str, **values: Any) -> str:
    context = {
        "root": root,
        "site_name": SITE_NAME,
        "gefreg_version": __version__,
        "live": False,
        "who": None,
        **values,
    }
    return environment().get_template(template).render(**context)


def matches(entry: EntryView, query: str) -> bool:
    return all(word in entry.search_text for word in query.lower().split())


def index_page(entries: Sequence[EntryView], query: str = "", **live: Any) -> str:
    shown = {e.name for e in entries if matches(e, query)}
    return _render(
        "index.html",
        "",
        title="Catalog",
        entries=list(entries),
        shown=shown,
        shown_names=shown,
        query=query,
        **live,
    )


def entry_page(entry: EntryView, **live: Any) -> str:
    return _render("entry.html", "../../", title=entry.name, e=entry, **live)


def version_page(version: VersionView, **live: Any) -> str:
    title = f"{version.name} {version.version}"
    return _render("version.html", "../../../", title=title, v=version, **live)


def static_file(name: str) -> bytes:
    if name not in STATIC_FILES:
        raise KeyError(name)
    return (STATIC / name).read_bytes()


def login_page(message: str | None = None, **live: Any) -> str:
    return _render("login.html", "/", title="Log in", message=message, **live)


def tasks_page(rows: Sequence[Any], **live: Any) -> str:
    return _render("tasks.html", "/", title="Tasks", tasks=list(rows), **live)


def task_page(task: dict[str, Any], **live: Any) -> str:
    return _render("task.html", "/", title=task["id"], t=task, **live)


def error_page(status: int, message: str, **live: Any) -> str:
    return _render(
        "error.html", "/", title=f"Error {status}", status=status, message=message, **live
    )
