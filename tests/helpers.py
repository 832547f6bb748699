"""Small helpers shared by the tests: file trees from dicts, valid records with overrides."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FAKE_DIGEST = "sha256:" + "ab" * 32

BASE_YAML = """\
name: {name}
description: Test base.
suite: bookworm
source_date_epoch: 1735689600
"""

SERVICE = {
    "name": "demo-service",
    "version": "1.0.0",
    "description": "A service for tests.",
    "license": "MIT",
    "maintainers": ["Ada Example <ada@example.org>"],
    "base": "debian-bookworm",
    "template": "debian",
    "files": {"run.sh": "/opt/service/run.sh"},
    "command": ["/bin/sh", "/opt/service/run.sh"],
    "inputs": [{"name": "data", "path": "/data/input"}],
    "outputs": [{"name": "result", "path": "/data/output"}],
}


def build_tree(root: Path, tree: dict[str, Any]) -> Path:
    """Create files and folders from a dict: str/bytes values are files, dicts are folders."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in tree.items():
        path = root / name
        if isinstance(content, dict):
            build_tree(path, content)
        elif isinstance(content, bytes):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    return root


def service_yaml(**overrides: Any) -> str:
    """A valid record as YAML text (JSON is YAML), with fields replaced or removed (None)."""
    data = dict(SERVICE)
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return "\n".join(f"{k}: {json.dumps(v)}" for k, v in data.items()) + "\n"


def make_catalog(
    root: Path,
    entries: dict[str, dict[str, Any]] | None = None,
    bases: tuple[str, ...] = ("debian-bookworm",),
    lock: dict[str, str] | None = None,
) -> Path:
    """A catalog with bases (locked to FAKE_DIGEST unless ``lock`` says otherwise) and entries."""
    tree: dict[str, Any] = {"bases": {b: {"base.yaml": BASE_YAML.format(name=b)} for b in bases}}
    digests = lock if lock is not None else {b: FAKE_DIGEST for b in bases}
    tree["bases"]["lock.json"] = json.dumps(
        {"version": 1, "bases": {k: {"digest": v} for k, v in digests.items()}}
    )
    for name, files in (entries or {}).items():
        tree[name] = files
    return build_tree(root, tree)


def demo_entry(**overrides: Any) -> dict[str, Any]:
    name = overrides.get("name", SERVICE["name"])
    return {name: {"service.yaml": service_yaml(**overrides), "run.sh": "echo hello\n"}}


BUSYBOX = Path("/bin/busybox")


def busybox_entry(name: str, script: str, **fields: Any) -> dict[str, Any]:
    """A FROM-scratch entry that runs ``script`` with the host's static busybox: it builds in
    about a second. (Make ``busybox`` executable after writing the tree.)"""
    spec: dict[str, Any] = {
        "name": name,
        "base": "scratch",
        "template": "static",
        "files": {"busybox": "/bin/busybox", "run.sh": "/opt/run.sh"},
        "command": ["/bin/busybox", "sh", "/opt/run.sh"],
        **fields,
    }
    tree = demo_entry(**spec)
    tree[name]["busybox"] = BUSYBOX.read_bytes()
    tree[name]["run.sh"] = script
    return tree


def write_build(
    state: Path,
    name: str,
    image_id: str,
    *,
    version: str = "1.0.0",
    fingerprint: str = FAKE_DIGEST,
    tags: tuple[str, ...] = (),
    cache_key: str | None = None,
) -> Path:
    """A build record as `gefreg build` writes it (through the same writer), for tests that
    need an entry to look built. With ``cache_key`` it is an earlier build: only in by-key."""
    from gefreg.image.build_record import BuildRecord, by_key_path, save_build
    from gefreg.settings import Settings

    settings = Settings(state / "unused-catalog", "127.0.0.1:1", state)
    record = BuildRecord(name, version, image_id, tags, fingerprint, cache_key=cache_key)
    if cache_key is not None:
        path = by_key_path(settings, name, cache_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record.to_json()))
        return path
    return save_build(settings, record)


def label_text(value: str) -> str:
    """What a label value reads back as after Docker parses gefreg's quoted LABEL value
    (:func:`gefreg.image.render.quote_value`): control characters and line breaks as spaces."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in value)


def own_run_containers(engine: Any, root: Path) -> list[str]:
    """The runner's containers (label ``org.gefreg.run``) that mount something under ``root``
    — this test session's temporary folder. The engine is shared: other sessions run the same
    tests at the same time, and their containers are none of our business."""
    from gefreg.run.hardening import RUN_LABEL

    own = []
    prefix = str(root.resolve()) + "/"
    for container in engine.container_ids(RUN_LABEL):
        try:
            mounts = engine.inspect_container(container).host_config.get("Mounts") or []
        except Exception:  # removed meanwhile
            continue
        if any(str(m.get("Source", "")).startswith(prefix) for m in mounts):
            own.append(container)
    return own


def unmount_under(root: Path) -> list[Path]:
    """Unmount every mount point below ``root`` (deepest first) and return them: what a run
    that was cut short left mounted there (its output file system, ``.gefreg-run-*/mnt``)."""
    import subprocess

    from gefreg.run.folders import mount_points

    prefix = str(root.resolve()) + "/"
    left = [p for p in mount_points() or [] if str(p).startswith(prefix)]
    for point in sorted(left, key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", str(point)], check=True, capture_output=True)
    return left


def remove_own_images(catalogs: Iterable[Path] = (), prefixes: Iterable[str] = ()) -> None:
    """Remove from the shared engine what these tests made, and nothing else: the build tags in
    the namespaces of these catalogs (gefreg tags every catalog's builds under a namespace of
    its own) and the references starting with these prefixes (repositories in a registry of this
    session, on a port of its own). Another test session's images with the same entry names are
    not touched; an image some other reference still names keeps that one. Untagged parents are
    kept (no prune): builds of other sessions may be using them as their build cache right now.
    """
    import docker
    import docker.errors

    from gefreg.settings import Settings

    ours_start = tuple(
        [Settings(c.resolve(), "unused", c).image_namespace + "/" for c in catalogs]
        + list(prefixes)
    )
    if not ours_start:
        return
    api = docker.from_env().api
    for image in api.images():
        refs = [t for t in image.get("RepoTags") or () if not t.startswith("<none>")]
        refs += [d for d in image.get("RepoDigests") or () if not d.startswith("<none>")]
        ours = [r for r in refs if r.startswith(ours_start)]
        try:
            if ours and len(ours) == len(refs):
                api.remove_image(image["Id"], force=True, noprune=True)
            else:
                for ref in ours:
                    api.remove_image(ref, noprune=True)
        except docker.errors.APIError:
            continue  # gone meanwhile, or in use by a container: left as it is


def git(root: Path, *args: str, date: str = "2025-01-01T00:00:00Z") -> str:
    """Run git in ``root`` as a fixed author, committing at ``date`` (a source date)."""
    import os
    import subprocess

    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
    }
    done = subprocess.run(
        ["git", "-C", str(root), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def git_repository(root: Path, date: str = "2025-01-01T00:00:00Z") -> str:
    """Make ``root`` a git repository with everything in it committed; returns the commit."""
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "catalog", date=date)
    return git(root, "rev-parse", "HEAD")
