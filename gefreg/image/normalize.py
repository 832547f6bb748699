"""Make an engine-built service image reproducible, and assemble it as gefreg publishes it.

The engine's build leaves the clock and the file system in the image: file times, the order
in which a folder was read, log files of apt and dpkg, ldconfig's aux cache, and a config with
the build's time, host and engine version. gefreg exports the built image, rewrites every
layer the service added (the base's layers are already reproducible and stay as they are):

- entries sorted by path (hard links re-pointed at the first of their group), numeric
  owners only, no access/change times, extended attributes kept;
- every time set to SOURCE_DATE_EPOCH, in the tar headers and in the header of
  timestamp-checked ``.pyc`` files, so their sources still match. Set, not clamped: a layer
  the engine took from its cache keeps the times of the build that first made it, and
  those would survive a clamp to a later epoch;
- files that only record the build removed (:data:`BUILD_ONLY`);
- gzip without a time or name, at a fixed level;

then writes a config of its own (the image's runtime settings, ``created`` = the epoch, history
times = the epoch) and the OCI manifest that publishing produces, and loads the result into the
engine. Its image ID (the config's digest) and manifest digest depend on the inputs only.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gefreg.errors import EnvironmentFailure
from gefreg.hashing import sha256_bytes
from gefreg.image import oci
from gefreg.registry.media_types import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST

BUILD_ONLY = frozenset(
    {
        "var/log/apt/history.log",
        "var/log/apt/term.log",
        "var/log/apt/eipp.log.xz",
        "var/log/dpkg.log",
        "var/log/alternatives.log",
        "var/cache/ldconfig/aux-cache",
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/srcpkgcache.bin",
        "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old",
        "var/cache/debconf/passwords.dat-old",
    }
)
RUNTIME_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
)
DPKG_STATUS = "var/lib/dpkg/status"
PYC_HEADER = 16
BLOCK = 512


@dataclass(frozen=True)
class BaseLayers:
    """The layers an image inherits from its base, as the base was published."""

    blobs: tuple[oci.Blob, ...] = ()
    diff_ids: tuple[str, ...] = ()
    history: int = 0  # how many history entries the base config has


@dataclass(frozen=True)
class Normalized:
    config: bytes
    manifest: bytes
    layers: tuple[oci.Blob, ...]
    diff_ids: tuple[str, ...]
    service_files: tuple[Path, ...]  # the rewritten layers (gzip), in order
    removed: tuple[str, ...]  # build-only files taken out
    dpkg_status: str | None  # the last status file a service layer wrote, if any

    @property
    def image_id(self) -> str:
        return sha256_bytes(self.config)

    @property
    def manifest_digest(self) -> str:
        return sha256_bytes(self.manifest)


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _header(member: tarfile.TarInfo, name: str, epoch: int) -> tarfile.TarInfo:
    out = tarfile.TarInfo(name)
    out.type = member.type
    out.mode = member.mode
    out.uid, out.gid = member.uid, member.gid
    out.size = member.size if member.isreg() else 0
    out.linkname = member.linkname
    out.devmajor, out.devminor = member.devmajor, member.devminor
    out.mtime = epoch
    out.uname = out.gname = ""
    out.pax_headers = {
        k: member.pax_headers[k]
        for k in sorted(member.pax_headers)
        if k.startswith("SCHILY.xattr.")
    }
    return out


def set_pyc_time(data: bytes, epoch: int) -> bytes:
    """A timestamp-checked .pyc records its source's mtime; it gets the epoch like the source
    (hash-checked ones, flags != 0, record no time and are left alone)."""
    if len(data) < PYC_HEADER or int.from_bytes(data[4:8], "little") != 0:
        return data
    return data[:8] + (epoch & 0xFFFFFFFF).to_bytes(4, "little") + data[12:]


def _ordered(members: list[tarfile.TarInfo]) -> Iterator[tuple[tarfile.TarInfo, str, str | None]]:
    """(member whose data to write, name to write it under, hard-link target or None), sorted
    by name. In each hard-link group the first name in order carries the data."""
    by_name = {_clean(m.name): m for m in members}
    leader: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for name, m in by_name.items():
        target = _clean(m.linkname) if m.islnk() else None
        if target is not None and target in by_name:
            groups.setdefault(target, [target]).append(name)
    for target, names in groups.items():
        head = min(names)
        for name in names:
            leader[name] = head
        by_name[head] = by_name[target]  # the first name carries the target's data
    for name in sorted(by_name):
        first = leader.get(name)
        yield by_name[name], name, (first if first is not None and first != name else None)


def normalize_layer(
    source: tarfile.TarFile, target: Path, epoch: int
) -> tuple[oci.Blob, str, list[str], bytes | None]:
    """Rewrite one layer into a gzip blob at ``target``; returns (blob, diff ID, removed
    build-only files, the dpkg status file if the layer has one)."""
    members, removed = [], []
    for m in source.getmembers():
        name = _clean(m.name)
        if not name:
            continue
        if name in BUILD_ONLY and m.isreg():
            removed.append(name)
            continue
        members.append(m)
    status = None
    with (
        oci.gzip_layer(target, oci.SERVICE_GZIP_LEVEL) as (uncompressed, compressed),
        tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as out,
    ):
        for member, name, link in _ordered(members):
            info = _header(member, name, epoch)
            if link is not None:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, link, 0
                out.addfile(info)
                continue
            if not info.isreg():
                out.addfile(info)
                continue
            fileobj: IO[bytes] | None = source.extractfile(member)
            if name.endswith(".pyc") or name == DPKG_STATUS:
                data = fileobj.read() if fileobj else b""
                if name == DPKG_STATUS:
                    status = data
                fileobj = io.BytesIO(set_pyc_time(data, epoch))
            out.addfile(info, fileobj)
    blob = oci.Blob("sha256:" + compressed.sha.hexdigest(), compressed.size, OCI_LAYER_GZIP)
    return blob, "sha256:" + uncompressed.sha.hexdigest(), removed, status


def service_config(
    raw: dict[str, Any], epoch: int, diff_ids: list[str], base_history: int
) -> bytes:
    """The image config gefreg writes: the runtime settings the build produced, the epoch as
    every time, and nothing about the machine that built it."""
    created = oci.rfc3339(epoch)
    runtime = raw.get("config") or {}
    history = []
    for number, item in enumerate(raw.get("history") or []):
        if number < base_history:
            history.append(item)  # the base's own, already reproducible
            continue
        entry: dict[str, Any] = {"created": created, "created_by": item.get("created_by", "")}
        if item.get("empty_layer"):
            entry["empty_layer"] = True
        history.append(entry)
    config = {
        "architecture": raw.get("architecture", "amd64"),
        "os": raw.get("os", "linux"),
        "created": created,
        "config": {k: runtime[k] for k in RUNTIME_KEYS if runtime.get(k)},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    return oci.canonical_json(config)


def manifest(config: bytes, layers: list[oci.Blob]) -> bytes:
    """The OCI manifest `gefreg publish` puts (same bytes, so the same digest)."""
    return oci.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_bytes(config),
                "size": len(config),
            },
            "layers": [b.descriptor() for b in layers],
        }
    )


def _saved(tar: tarfile.TarFile) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """(the archive's manifest entry, its layer paths, the raw config) of a docker save."""
    entry = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
    raw = json.load(tar.extractfile(entry["Config"]))  # type: ignore[arg-type]
    if len(raw["rootfs"]["diff_ids"]) != len(entry["Layers"]):
        raise EnvironmentFailure("the engine exported an inconsistent image")
    return entry, list(entry["Layers"]), raw


def normalize_saved(saved: Path, work: Path, epoch: int, base: BaseLayers) -> Normalized:
    """Normalize the layers above ``base`` of a `docker save` archive into ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(saved) as tar:
        _, paths, raw = _saved(tar)
        inherited = tuple(raw["rootfs"]["diff_ids"][: len(base.diff_ids)])
        if inherited != base.diff_ids:
            raise EnvironmentFailure(
                "the built image does not start with its base's layers",
                "the engine may hold another image under the base's reference: pull it again",
            )
        blobs, diff_ids = list(base.blobs), list(base.diff_ids)
        files, removed, status = [], [], None
        for index, path in enumerate(paths[len(base.diff_ids) :]):
            target = work / f"layer-{index}.tar.gz"
            with tarfile.open(fileobj=tar.extractfile(path), mode="r:") as layer:
                blob, diff_id, gone, found = normalize_layer(layer, target, epoch)
            blobs.append(blob)
            diff_ids.append(diff_id)
            files.append(target)
            removed += gone
            status = found if found is not None else status
    config = service_config(raw, epoch, diff_ids, base.history)
    return Normalized(
        config,
        manifest(config, blobs),
        tuple(blobs),
        tuple(diff_ids),
        tuple(files),
        tuple(removed),
        status.decode(errors="replace") if status is not None else None,
    )


def _member(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _file_chunks(fh: IO[bytes], size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = fh.read(min(oci.CHUNK, left))
        if not chunk:
            raise EnvironmentFailure("a layer file ended early while loading the image")
        left -= len(chunk)
        yield chunk
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


def load_stream(saved: Path, image: Normalized, base_count: int) -> Iterator[bytes]:
    """A `docker load` archive of the normalized image, generated as it is sent: the base's
    layers straight from the saved archive, the service's from the rewritten files."""
    layer_names = [f"{i}/layer.tar" for i in range(len(image.diff_ids))]
    with tarfile.open(saved) as tar:
        _, paths, _ = _saved(tar)
        with open(saved, "rb") as fh:
            for name, path in zip(layer_names[:base_count], paths[:base_count], strict=True):
                member = tar.getmember(path)
                fh.seek(member.offset_data)
                yield _member(name, member.size)
                yield from _file_chunks(fh, member.size)
    for name, file in zip(layer_names[base_count:], image.service_files, strict=True):
        size = os.path.getsize(file)
        yield _member(name, size)
        with open(file, "rb") as fh:
            yield from _file_chunks(fh, size)
    config_name = image.image_id.removeprefix("sha256:") + ".json"
    yield _member(config_name, len(image.config))
    yield from _file_chunks(io.BytesIO(image.config), len(image.config))
    listing = json.dumps([{"Config": config_name, "RepoTags": None, "Layers": layer_names}])
    yield _member("manifest.json", len(listing))
    yield from _file_chunks(io.BytesIO(listing.encode()), len(listing))
    yield b"\0" * (2 * BLOCK)


def saved_file(saved: Path, layers: range, path: str) -> bytes | None:
    """A file's content in the topmost of ``layers`` (indexes) of a `docker save` archive
    that has it; None when none does. Headers are read, other contents skipped."""
    with tarfile.open(saved) as tar:
        _, paths, _ = _saved(tar)
        for index in reversed(layers):
            with tarfile.open(fileobj=tar.extractfile(paths[index]), mode="r:") as layer:
                for member in layer:
                    if _clean(member.name) == path and member.isreg():
                        fh = layer.extractfile(member)
                        return fh.read() if fh else b""
    return None
