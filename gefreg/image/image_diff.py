"""`gefreg diff`: how two images differ, from the config down to single files.

Equal image IDs mean equal images (the ID is the config's digest, and the config holds every
layer's digest), and nothing is exported. Otherwise the configs are compared key by key,
the layer lists digest by digest, and, when layers differ, both images are exported as a
stream and their file systems compared entry by entry (path, kind, size, mode, owner, time,
sha256, link). With ``content``, diffoscope shows what changed inside each changed file.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.engine import Engine
from gefreg.errors import BadInput, ToolMissing
from gefreg.image.image_listing import (
    CHUNK,
    FileEntry,
    ImageListing,
    clean_name,
    read_archive,
)
from gefreg.subprocesses import run_tool
from gefreg.validators import inside

FIELDS = ("kind", "size", "mode", "uid", "gid", "mtime", "sha256", "link")
DIFFOSCOPE_LINES = 60
DIFFOSCOPE_FILES = 20  # changed files explained by --content; the rest are only listed


@dataclass(frozen=True)
class Change:
    path: str
    status: str  # added | removed | changed
    fields: tuple[str, ...] = ()
    a: FileEntry | None = None
    b: FileEntry | None = None
    content: str | None = None  # diffoscope's text, with --content

    def to_json(self) -> dict[str, Any]:
        return {
            "path": "/" + self.path,
            "status": self.status,
            "fields": list(self.fields),
            "a": self.a.to_json() if self.a else None,
            "b": self.b.to_json() if self.b else None,
            **({"content": self.content} if self.content is not None else {}),
        }


@dataclass(frozen=True)
class ImageDiff:
    a: str
    b: str
    a_id: str
    b_id: str
    config: tuple[tuple[str, Any, Any], ...] = ()
    layers: tuple[tuple[int, str | None, str | None], ...] = ()
    files: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return self.a_id == self.b_id

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "a": {"ref": self.a, "image_id": self.a_id},
            "b": {"ref": self.b, "image_id": self.b_id},
            "config": [{"key": k, "a": x, "b": y} for k, x, y in self.config],
            "layers": [{"index": i, "a": x, "b": y} for i, x, y in self.layers],
            "files": [c.to_json() for c in self.files],
        }


def config_changes(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Key paths (``config.Labels.x``, ``history[3].created_by``) whose values differ; the
    layer list is compared separately."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(a.keys() | b.keys()):
            path = f"{prefix}.{key}" if prefix else str(key)
            if path == "rootfs":
                continue
            out += config_changes(a.get(key), b.get(key), path)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for number, (x, y) in enumerate(zip(a, b, strict=True)):
            out += config_changes(x, y, f"{prefix}[{number}]")
        return out
    return [] if a == b else [(prefix, a, b)]


def layer_changes(
    a: tuple[str, ...], b: tuple[str, ...]
) -> list[tuple[int, str | None, str | None]]:
    count = max(len(a), len(b))
    pairs = [(i, a[i] if i < len(a) else None, b[i] if i < len(b) else None) for i in range(count)]
    return [(i, x, y) for i, x, y in pairs if x != y]


def file_changes(a: dict[str, FileEntry], b: dict[str, FileEntry]) -> list[Change]:
    out = []
    for path in sorted(a.keys() | b.keys()):
        x, y = a.get(path), b.get(path)
        if x is None:
            out.append(Change(path, "added", b=y))
        elif y is None:
            out.append(Change(path, "removed", a=x))
        else:
            differ = tuple(f for f in FIELDS if getattr(x, f) != getattr(y, f))
            if differ:
                out.append(Change(path, "changed", differ, x, y))
    return out


def compare(a: ImageListing, b: ImageListing) -> ImageDiff:
    return ImageDiff(
        a.ref,
        b.ref,
        a.image_id,
        b.image_id,
        tuple(config_changes(a.config, b.config)),
        tuple(layer_changes(a.diff_ids, b.diff_ids)),
        tuple(file_changes(a.files(), b.files())),
    )


def diff(
    engine: Engine,
    a: str,
    b: str,
    *,
    content: bool = False,
    on_step: Callable[[str], None] = lambda _: None,
) -> ImageDiff:
    """Compare two images the engine has (references or IDs)."""
    info = [engine.image(ref) for ref in (a, b)]
    for ref, found in zip((a, b), info, strict=True):
        if found is None:
            raise BadInput(f"the engine has no image {ref}", "build or pull it first")
    assert info[0] is not None and info[1] is not None
    if info[0].id == info[1].id:
        return ImageDiff(a, b, info[0].id, info[1].id)
    if content:
        return _with_content(engine, a, b, on_step)
    on_step(f"exporting and listing {a} and {b}")
    with ThreadPoolExecutor(max_workers=2) as pool:
        la, lb = pool.map(lambda ref: read_archive(engine.save_stream(ref), ref), (a, b))
    return compare(la, lb)


def _with_content(engine: Engine, a: str, b: str, on_step: Callable[[str], None]) -> ImageDiff:
    """Export both images to disk (changed files are read back from there) and let diffoscope
    explain each changed regular file."""
    tool = shutil.which("diffoscope")
    if tool is None:
        raise ToolMissing(
            "--content needs diffoscope", "apt-get install diffoscope (make setup installs it)"
        )
    with tempfile.TemporaryDirectory(prefix="gefreg-diff-") as tmp_name:
        tmp = Path(tmp_name)
        listings = []
        for side, ref in (("a", a), ("b", b)):
            on_step(f"exporting {ref}")
            archive = engine.save(ref, tmp / f"{side}.tar")
            with open(archive, "rb") as fh:
                listings.append(read_archive(fh, ref))
        result = compare(listings[0], listings[1])
        changes = []
        explained = 0
        for change in result.files:
            if (
                change.status == "changed"
                and "sha256" in change.fields
                and explained < DIFFOSCOPE_FILES
            ):
                explained += 1
                on_step(f"diffoscope /{change.path}")
                left = _extract(tmp / "a.tar", change.path, tmp / "a")
                right = _extract(tmp / "b.tar", change.path, tmp / "b")
                text = _diffoscope(tool, tmp, change.path) if left and right else None
                change = Change(change.path, change.status, change.fields, change.a, change.b, text)
            changes.append(change)
    return ImageDiff(
        result.a, result.b, result.a_id, result.b_id, result.config, result.layers, tuple(changes)
    )


def _extract(archive: Path, path: str, into: Path) -> Path | None:
    """The file at ``path`` as the image's top-most layer that has it holds it, written below
    ``into``; None when it cannot be (a name that would leave ``into``, such as ``../x``:
    image content is untrusted)."""
    target = inside(into, path)
    if target is None or ".." in path.split("/"):
        return None
    try:
        return _copy_out(archive, path, target)
    except (OSError, tarfile.TarError, KeyError, ValueError, TypeError, IndexError):
        return None  # the listing already names the change; only its content is not shown


def _copy_out(archive: Path, path: str, target: Path) -> Path | None:
    with tarfile.open(archive) as outer:
        entry = json.load(outer.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        for layer_path in reversed(entry["Layers"]):
            with tarfile.open(fileobj=outer.extractfile(layer_path), mode="r:") as layer:
                for member in layer:
                    if clean_name(member.name) == path and member.isreg():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        source = layer.extractfile(member)
                        with open(target, "xb") as out:
                            if source is not None:
                                shutil.copyfileobj(source, out, CHUNK)
                        return target
    return None


def _diffoscope(tool: str, folder: Path, path: str) -> str:
    """diffoscope's text for a/PATH against b/PATH below ``folder``, cut to a screenful."""
    done = run_tool(
        [tool, "--no-progress", "--text", "-", f"a/{path}", f"b/{path}"],
        ok_codes=(0, 1),
        timeout=600,
        cwd=folder,
    )
    lines = done.stdout.decode(errors="replace").splitlines()
    if len(lines) > DIFFOSCOPE_LINES:
        lines = [*lines[:DIFFOSCOPE_LINES], f"… {len(lines) - DIFFOSCOPE_LINES} more lines"]
    return "\n".join(lines)
