"""Typed fakes of gefreg's edges, shared by the unit tests: an engine (images and containers,
:mod:`gefreg.engine.protocols`) and a registry (what :mod:`gefreg.release.verify` reads).

They behave like the real ones where the code under test can tell: an image is found by ID,
tag or repository digest; a container shows the settings it was created with unless a test
tampers with them; logs are written into new files only. Integration tests use the real thing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from gefreg.engine import ContainerSpec, ContainerState, ImageInfo, StartFailed
from gefreg.engine.protocols import RunEngine
from gefreg.registry.client import Manifest
from gefreg.registry.media_types import OCI_MANIFEST
from gefreg.release.verify import RegistryView

# What a fake container does when it "runs": it gets the spec (the mounts' sources are host
# folders) and returns the exit code; None means it never ends (the runner's timeout).
Service = Callable[[ContainerSpec], int | None]


def image_info(
    image_id: str,
    tags: tuple[str, ...] = (),
    digests: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
) -> ImageInfo:
    return ImageInfo(image_id, tags, digests, dict(labels or {}), "", 0)


class FakeStream:
    """A container's output: what the service wrote, once it ended (or nothing, when killed)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, bytes]] = []
        self.ended = threading.Event()

    def end(self, stdout: bytes, stderr: bytes) -> None:
        if not self.ended.is_set():
            self.chunks = [(1, stdout), (2, stderr)]
            self.ended.set()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        self.ended.wait()
        yield from ((n, c) for n, c in self.chunks if c)

    def close(self) -> None:
        self.ended.set()


@dataclass
class FakeContainer:
    spec: ContainerSpec
    status: str = "created"  # created, running, exited
    exit_code: int = 0
    oom_killed: bool = False
    stream: FakeStream | None = None


def host_config(spec: ContainerSpec) -> dict[str, Any]:
    """The ``HostConfig`` a faithful engine reports for ``spec``."""
    mounts = []
    for m in spec.mounts:
        mount: dict[str, Any] = {
            "Source": str(m.source),
            "Target": m.target,
            "ReadOnly": m.read_only,
        }
        if m.non_recursive:
            mount["BindOptions"] = {"NonRecursive": True}
        mounts.append(mount)
    config: dict[str, Any] = {
        "NetworkMode": spec.network,
        "ReadonlyRootfs": spec.read_only,
        "Tmpfs": dict(spec.tmpfs),
        "CapAdd": None,
        "CapDrop": list(spec.cap_drop),
        "SecurityOpt": list(spec.security_opt),
        "Privileged": False,
        "PidsLimit": spec.pids,
        "Memory": spec.memory,
        "MemorySwap": spec.memory,
        "NanoCpus": spec.nano_cpus,
        "Mounts": mounts,
    }
    if spec.ulimits:
        config["Ulimits"] = [
            {"Name": u.name, "Soft": u.value, "Hard": u.value} for u in spec.ulimits
        ]
    if spec.log_driver is not None:
        config["LogConfig"] = {"Type": spec.log_driver, "Config": {}}
    return config


class FakeEngine:
    """Images (local, or in a registry until pulled) and containers that run a Python
    ``service`` against the mounted host folders.

    Knobs for the runner's unhappy paths: ``start_error`` (the process cannot start),
    ``interrupt_on_wait`` (Ctrl-C while waiting), ``tamper`` (changes to what the engine
    reports it applied), ``oom`` (the memory limit killed it). ``calls`` lists every container
    call in order.
    """

    def __init__(
        self,
        *images: ImageInfo | tuple[ImageInfo, dict[str, Any]],
        service: Service | None = None,
    ) -> None:
        self.images: dict[str, tuple[ImageInfo, dict[str, Any]]] = {}
        for item in images:
            info, config = item if isinstance(item, tuple) else (item, {})
            self.images[info.id] = (info, config)
        self.local: set[str] = set(self.images)
        self.pulled: list[str] = []
        self.service: Service = service or (lambda spec: 0)
        self.containers: dict[str, FakeContainer] = {}
        self.removed: list[str] = []
        self.calls: list[str] = []
        self.start_error: str | None = None
        self.interrupt_on_wait = False
        self.tamper: dict[str, Any] = {}
        self.oom = False
        self.stdout = b""
        self.stderr = b""

    # --- images (ImageStore) ------------------------------------------------------------------

    def _find(self, ref: str, local_only: bool = True) -> ImageInfo | None:
        for image_id, (info, _) in self.images.items():
            if local_only and image_id not in self.local:
                continue
            if ref in (image_id, *info.repo_tags, *info.repo_digests):
                return info
        return None

    def image(self, ref: str) -> ImageInfo | None:
        return self._find(ref)

    def image_config(self, ref: str) -> dict[str, Any] | None:
        info = self._find(ref)
        return None if info is None else dict(self.images[info.id][1])

    def repo_digest_refs(self, digest: str) -> list[str]:
        return [
            ref
            for image_id, (info, _) in self.images.items()
            if image_id in self.local
            for ref in info.repo_digests
            if ref.endswith("@" + digest)
        ]

    def pull(self, ref: str) -> ImageInfo:
        self.pulled.append(ref)
        info = self._find(ref, local_only=False)
        if info is None:
            raise AssertionError(f"the fake registry has no {ref}")
        self.local.add(info.id)
        return info

    # --- containers (ContainerRuntime) --------------------------------------------------------

    def facts(self) -> dict[str, str]:
        return {"engine": "fake", "api": "1.41", "os": "linux", "arch": "x86_64", "kernel": "6"}

    def create_container(self, spec: ContainerSpec) -> str:
        self.calls.append("create")
        if self._find(spec.image) is None:
            raise AssertionError(f"no local image {spec.image}")
        container = hashlib.sha256(f"{spec.name}{len(self.containers)}".encode()).hexdigest()
        self.containers[container] = FakeContainer(spec)
        return container

    def inspect_container(self, container: str) -> ContainerState:
        self.calls.append("inspect")
        c = self.containers[container]
        spec = c.spec
        return ContainerState(
            id=container,
            running=c.status == "running",
            exit_code=c.exit_code,
            oom_killed=c.oom_killed,
            error="",
            started_at="2025-01-01T00:00:00Z" if c.status != "created" else "",
            finished_at="2025-01-01T00:00:01Z" if c.status == "exited" else "",
            host_config={**host_config(spec), **self.tamper},
            user=spec.user,
            env=("PATH=/bin",),
            command=spec.command,
            entrypoint=spec.entrypoint or (),
            working_dir="",
        )

    def start_container(self, container: str) -> None:
        self.calls.append("start")
        if self.start_error is not None:
            self.containers[container].exit_code = 127
            self.containers[container].status = "exited"
            raise StartFailed(f"the service could not start: {self.start_error}")
        self.containers[container].status = "running"

    def wait_container(self, container: str, timeout: float) -> int | None:
        self.calls.append("wait")
        c = self.containers[container]
        if c.status != "running":
            return c.exit_code
        if self.interrupt_on_wait:
            raise KeyboardInterrupt
        code = self.service(c.spec)
        if code is None:
            return None  # still running at the deadline
        c.status, c.exit_code, c.oom_killed = "exited", code, self.oom
        if c.stream is not None:
            c.stream.end(self.stdout, self.stderr)
        return code

    def kill_container(self, container: str) -> None:
        self.calls.append("kill")
        c = self.containers[container]
        if c.status == "running":
            c.status, c.exit_code = "exited", 137
        if c.stream is not None:
            c.stream.end(b"", b"")

    def attach_output(self, container: str) -> FakeStream:
        self.calls.append("attach")
        stream = FakeStream()
        self.containers[container].stream = stream
        return stream

    def remove_container(self, container: str) -> None:
        self.calls.append("remove")
        removed = self.containers.pop(container, None)
        if removed is not None:
            self.removed.append(container)
            if removed.stream is not None:
                removed.stream.end(b"", b"")


def _check_engine(engine: FakeEngine) -> RunEngine:
    return engine  # mypy: the fake implements every protocol the runner uses


# --- the registry -----------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_body(text: str) -> bytes:
    """An OCI image manifest whose config and layer digests derive from ``text``."""
    config, layer = sha(f"config {text}".encode()), sha(f"layer {text}".encode())
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"digest": config, "size": 1},
            "layers": [{"digest": layer, "size": 1}],
        }
    ).encode()


@dataclass
class FakeRegistry:
    """Tags, manifests by digest and blobs in dicts; counts every call."""

    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)

    def add(self, body: bytes, *tags: str) -> str:
        digest = sha(body)
        self.manifests[digest] = body
        doc = json.loads(body)
        self.blobs |= {d["digest"] for d in [doc["config"], *doc["layers"]]}
        for tag in tags:
            self.tags[tag] = digest
        return digest

    def ping(self) -> None:
        self.calls["ping"] += 1

    def list_tags(self, repo: str) -> list[str]:
        self.calls["list_tags"] += 1
        return sorted(self.tags)

    def head_manifests(self, repo: str, references: list[str]) -> dict[str, str | None]:
        self.calls["head_manifest"] += len(references)
        return {ref: self.tags.get(ref) for ref in references}

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        self.calls["get_manifest"] += 1
        digest = self.tags.get(reference, reference)
        body = self.manifests.get(digest)
        return Manifest(digest, OCI_MANIFEST, body) if body is not None else None

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        self.calls["put_manifest"] += 1
        return self.add(body, reference)

    def blob_exists(self, repo: str, digest: str) -> bool:
        self.calls["blob_exists"] += 1
        return digest in self.blobs


def _check_registry(registry: FakeRegistry) -> RegistryView:
    return registry  # mypy: the fake implements what verify reads
