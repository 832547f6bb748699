"""Curated base images: mmdebstrap from the Debian archive, assembled into OCI by hand.

The same base record gives the same image digest: mmdebstrap runs with the record's
SOURCE_DATE_EPOCH, and :mod:`gefreg.image.oci` writes layer, config and manifest with fixed
timestamps and deterministic compression. A different digest for an unchanged record means
the Debian archive itself moved (a point release); the lock file then shows the change.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gefreg.catalog.entries import BASES_DIR, base_repository, write_lock
from gefreg.errors import EnvironmentFailure
from gefreg.hashing import sha256_bytes
from gefreg.image import oci
from gefreg.image.normalize import BaseLayers
from gefreg.model import BaseEntry
from gefreg.registry.media_types import OCI_MANIFEST
from gefreg.settings import Settings
from gefreg.subprocesses import find_tool, stream_tool

SCHEME = 1
SNAPSHOT_HOST = "snapshot.debian.org"
# Leave documentation and translations out of the image, but keep every copyright file.
SLIM_DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)


@dataclass(frozen=True)
class BaseBuild:
    name: str
    digest: str
    image_id: str
    fingerprint: str
    layout: Path
    cached: bool
    lock_changed: bool

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["layout"] = str(self.layout)
        return data


def fingerprint(base: BaseEntry) -> str:
    data = {"scheme": SCHEME, "spec": dataclasses.asdict(base.spec), "slim": SLIM_DPKG_OPTIONS}
    return sha256_bytes(json.dumps(data, sort_keys=True).encode())


def repository(settings: Settings, name: str) -> str:
    return base_repository(settings.registry, name)


def mmdebstrap_command(base: BaseEntry, output: Path) -> list[str]:
    spec = base.spec
    argv = [
        find_tool("mmdebstrap"),
        f"--variant={spec.variant}",
        "--mode=auto",
        "--format=tar",
        '--aptopt=Acquire::Retries "3"',
        "--skip=output/mknod",
    ]
    if SNAPSHOT_HOST in spec.mirror:
        # A snapshot's Release file has long expired; mmdebstrap also writes this option into
        # the image's apt configuration, so service builds on the base can use it too.
        argv.append('--aptopt=Acquire::Check-Valid-Until "false"')
    if spec.packages:
        argv.append("--include=" + ",".join(spec.packages))
    for option in SLIM_DPKG_OPTIONS:
        argv.append(f"--dpkgopt={option}")
    argv += [spec.suite, str(output), spec.mirror]
    return argv


def _labels(base: BaseEntry, fp: str) -> dict[str, str]:
    spec = base.spec
    labels = dict(spec.labels)
    labels.update(
        {
            "org.opencontainers.image.title": spec.name,
            "org.opencontainers.image.description": spec.description,
            "org.opencontainers.image.created": oci.rfc3339(spec.source_date_epoch),
            "org.gefreg.base": spec.name,
            "org.gefreg.base.suite": spec.suite,
            "org.gefreg.base.fingerprint": fp,
        }
    )
    return labels


def state_dir(settings: Settings, name: str) -> Path:
    return settings.state_dir / "bases" / name


def cached(settings: Settings, base: BaseEntry) -> BaseBuild | None:
    """The last build of this exact record, if its OCI layout is still complete."""
    folder = state_dir(settings, base.name)
    try:
        meta = json.loads((folder / "build.json").read_text())
        image = oci.open_layout(folder / "oci")
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("fingerprint") != fingerprint(base) or meta.get("digest") != image.digest:
        return None
    if not all(image.blob_path(b.digest).is_file() for b in (*image.layers, image.config)):
        return None
    return BaseBuild(
        base.name,
        image.digest,
        image.image_id,
        meta["fingerprint"],
        image.layout,
        cached=True,
        lock_changed=False,
    )


def build(
    settings: Settings,
    base: BaseEntry,
    *,
    no_cache: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> BaseBuild:
    """Build (or reuse) the base image and record its digest in the catalog's lock."""
    fp = fingerprint(base)
    hit = None if no_cache else cached(settings, base)
    if hit is not None:
        changed = write_lock(settings.catalog, base.name, hit.digest)
        return dataclasses.replace(hit, lock_changed=changed)
    folder = state_dir(settings, base.name)
    folder.mkdir(parents=True, exist_ok=True)
    rootfs = folder / "rootfs.tar"
    work = folder / "oci.tmp"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(base.spec.source_date_epoch), "LC_ALL": "C"}
    try:
        stream_tool(mmdebstrap_command(base, rootfs), on_line=on_line, env=env, timeout=3600)
        if on_line:
            on_line("assembling the OCI image (normalized layer, fixed timestamps)")
        image = oci.assemble(
            work,
            rootfs,
            epoch=base.spec.source_date_epoch,
            env=dict(base.spec.env) or {"LANG": "C.UTF-8"},
            labels=_labels(base, fp),
            cmd=["/bin/bash"],
            created_by=f"gefreg base build {base.name}: mmdebstrap --variant={base.spec.variant} "
            f"{base.spec.suite} {base.spec.mirror}",
            ref_name=base.name,
        )
    finally:
        rootfs.unlink(missing_ok=True)
    final = folder / "oci"
    if final.exists():
        shutil.rmtree(final)
    os.replace(work, final)
    meta = {"fingerprint": fp, "digest": image.digest, "image_id": image.image_id}
    (folder / "build.json").write_text(json.dumps(meta, indent=2) + "\n")
    changed = write_lock(settings.catalog, base.name, image.digest)
    return BaseBuild(
        base.name, image.digest, image.image_id, fp, final, cached=False, lock_changed=changed
    )


def push(settings: Settings, built: BaseBuild) -> str:
    """Push the base's OCI layout to the registry through the HTTP API; returns the digest.

    The tag names the suite and digest, and the manifest is put by the exact bytes we wrote,
    so the registry digest equals the locally computed one.
    """
    from gefreg.registry.client import RegistryClient

    image = oci.open_layout(built.layout)
    repo = f"{BASES_DIR}/{built.name}"
    client = RegistryClient(settings.registry_url)
    for blob in (*image.layers, image.config):
        client.push_blob(repo, blob.digest, image.blob_path(blob.digest))
    body = image.blob_path(image.digest).read_bytes()
    tag = "sha256-" + image.digest.removeprefix("sha256:")[:16]
    digest = client.put_manifest(repo, tag, body, OCI_MANIFEST)
    # Service images start with this layer: their publish mounts it instead of uploading it.
    from gefreg.registry.layer_cache import LayerCache

    cache = LayerCache.of(settings.state_dir)
    for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
        cache.put(diff_id, layer.digest, layer.size, repo)
    if digest != image.digest:
        raise EnvironmentFailure(f"the registry stored {repo} as {digest}, not {image.digest}")
    return digest


def find_local(settings: Settings, name: str, digest: str) -> BaseBuild | None:
    """A base layout built on this machine with exactly ``digest``, if any."""
    folder = state_dir(settings, name)
    try:
        image = oci.open_layout(folder / "oci")
        meta = json.loads((folder / "build.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    if image.digest != digest:
        return None
    return BaseBuild(
        name,
        image.digest,
        image.image_id,
        meta.get("fingerprint", ""),
        image.layout,
        cached=True,
        lock_changed=False,
    )


def published_layers(settings: Settings, name: str, digest: str) -> BaseLayers:
    """The base's layers as published (blob descriptors, diff IDs, history length): from the
    layout built on this machine, else from the registry. A service image's manifest names
    these very blobs, so its digest does not depend on where the base came from."""
    local = find_local(settings, name, digest)
    if local is not None:
        image = oci.open_layout(local.layout)
        config = json.loads(image.blob_path(image.config.digest).read_bytes())
        return BaseLayers(image.layers, image.diff_ids, len(config.get("history") or []))
    from gefreg.registry.client import RegistryClient

    repo = f"{BASES_DIR}/{name}"
    with RegistryClient(settings.registry_url) as client:
        found = client.get_manifest(repo, digest)
        if found is None:
            raise EnvironmentFailure(
                f"base {repo}@{digest} is neither built on this machine nor in the registry "
                f"{settings.registry}",
                f"build and push it: gefreg base build {name}",
            )
        manifest = found.json()
        config = json.loads(client.get_blob(repo, manifest["config"]["digest"]))
    blobs = tuple(oci.Blob(d["digest"], d["size"], d["mediaType"]) for d in manifest["layers"])
    return BaseLayers(blobs, tuple(config["rootfs"]["diff_ids"]), len(config.get("history") or []))
