"""What the stages need of a container engine, as small protocols.

:class:`gefreg.engine.Engine` implements them all; the runner and the trust decision take these
instead, so they can be exercised without Docker (``tests/fakes.py`` has typed fakes).
"""

from __future__ import annotations

from typing import Any, Protocol

from gefreg.engine.types import ContainerSpec, ContainerState, ImageInfo, OutputStream


class ImageStore(Protocol):
    """The engine's images: look one up, read its config, pull one by digest."""

    def image(self, ref: str) -> ImageInfo | None: ...

    def image_config(self, ref: str) -> dict[str, Any] | None: ...

    def repo_digest_refs(self, digest: str) -> list[str]: ...

    def pull(self, ref: str) -> ImageInfo: ...


class ContainerRuntime(Protocol):
    """One container's life: create, start, wait, kill, inspect, logs, remove."""

    def facts(self) -> dict[str, str]: ...

    def create_container(self, spec: ContainerSpec) -> str: ...

    def inspect_container(self, container: str) -> ContainerState: ...

    def start_container(self, container: str) -> None: ...

    def wait_container(self, container: str, timeout: float) -> int | None: ...

    def kill_container(self, container: str) -> None: ...

    def attach_output(self, container: str) -> OutputStream: ...

    def remove_container(self, container: str) -> None: ...


class RunEngine(ImageStore, ContainerRuntime, Protocol):
    """Everything a run needs: its image and its container."""
