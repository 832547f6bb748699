"""Image calls of the engine adapter: inspect, pull, load, save (to a file or as a stream),
tag, remove, build."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

from gefreg.engine.translate import refused, translated
from gefreg.engine.types import BuildEvent, ImageInfo, image_info
from gefreg.errors import BadInput, BuildFailed, EnvironmentFailure

STEP_RE = re.compile(r"^Step (\d+/\d+) : (.*)$")


def _follow_pull(
    events: Iterable[dict[str, Any]], report: Callable[[int, int | None], None] | None
) -> None:
    """Read the engine's pull stream to its end; an error in it fails the pull. Bytes
    downloaded per layer are summed for ``report``."""
    current: dict[str, int] = {}
    totals: dict[str, int] = {}
    for event in events:
        if event.get("error"):
            raise EnvironmentFailure(
                f"the pull failed: {event['error']}",
                "is the registry running? `gefreg registry status`",
            )
        layer, state = str(event.get("id") or ""), event.get("status")
        detail = event.get("progressDetail") or {}
        if state == "Downloading" and detail.get("total"):
            current[layer] = int(detail.get("current") or 0)
            totals[layer] = int(detail["total"])
        elif state in ("Download complete", "Pull complete", "Already exists") and layer:
            current[layer] = totals.get(layer, current.get(layer, 0))
        else:
            continue
        if report is not None:
            report(sum(current.values()), sum(totals.values()) or None)


def _loaded(events: Iterable[dict[str, Any]] | None, what: str) -> list[str]:
    """The image IDs or tags a `docker load` reports; an error in its stream fails the load."""
    loaded = []
    for event in events or []:
        if "error" in event:
            raise EnvironmentFailure(f"the engine could not load {what}: {event['error']}")
        stream = str(event.get("stream", ""))
        if stream.startswith("Loaded image"):
            loaded.append(stream.split(": ", 1)[1].strip())
    return loaded


class ImageCalls:
    """Mixed into :class:`gefreg.engine.Engine`; ``client`` is the docker SDK client."""

    client: Any

    def image(self, ref: str) -> ImageInfo | None:
        """The local image for a name, name@digest or ID; None when the engine has none."""
        import docker.errors

        with translated(f"inspecting {ref}"):
            try:
                return image_info(self.client.api.inspect_image(ref))
            except docker.errors.ImageNotFound:
                return None
            except docker.errors.APIError as exc:
                if exc.status_code in (400, 404):
                    return None
                raise EnvironmentFailure(f"the engine refused to inspect {ref}: {exc}") from None

    def image_config(self, ref: str) -> dict[str, Any] | None:
        """The image's runtime config (Cmd, Entrypoint, Env, User, WorkingDir, Labels)."""
        import docker.errors

        with translated(f"inspecting {ref}"):
            try:
                return dict(self.client.api.inspect_image(ref).get("Config") or {})
            except docker.errors.APIError as exc:
                if exc.status_code in (400, 404):
                    return None
                raise EnvironmentFailure(f"the engine refused to inspect {ref}: {exc}") from None

    def repo_digest_refs(self, digest: str) -> list[str]:
        """``repository@digest`` references of local images pulled with that manifest digest."""
        with translated("listing images"), refused("listing images"):
            images = self.client.api.images(all=False)
        refs = []
        for image in images or []:
            for ref in image.get("RepoDigests") or []:
                if ref.endswith("@" + digest):
                    refs.append(str(ref))
        return refs

    # Set by a caller that shows progress: called with the reference when a pull starts, it
    # returns what hears the bytes downloaded so far (and the total known so far).
    pull_listener: Callable[[str], Callable[[int, int | None], None]] | None = None

    def pull(self, ref: str) -> ImageInfo:
        """Pull ``repository@sha256:...`` (or a tag) from its registry."""
        import docker.errors

        repository, _, digest = ref.partition("@")
        report = self.pull_listener(ref) if self.pull_listener is not None else None
        with translated(f"pulling {ref}"):
            try:
                events = self.client.api.pull(
                    repository, tag=digest or None, stream=True, decode=True
                )
                _follow_pull(events, report)
            except docker.errors.APIError as exc:
                raise EnvironmentFailure(
                    f"could not pull {ref}: {exc.explanation or exc}",
                    "is the registry running? `gefreg registry status`",
                ) from None
        info = self.image(ref)
        if info is None:
            raise EnvironmentFailure(f"pulled {ref} but the engine does not list it")
        return info

    def load(self, archive: Path) -> list[str]:
        """`docker load` an archive; returns the loaded image IDs or tags."""
        with translated(f"loading {archive}"), open(archive, "rb") as fh:
            events = self.client.api.load_image(fh)
        return _loaded(events, str(archive))

    def save(self, ref: str, destination: Path) -> Path:
        """`docker save` one image into a docker-archive tarball (streamed to disk)."""
        import docker.errors

        tmp = destination.with_name(destination.name + ".tmp")
        # refused: an engine that cannot export what it holds (500, e.g. a loaded layer
        # naming ../x) is an environment failure with its explanation, not a traceback
        with translated(f"exporting {ref}"), refused(f"exporting {ref}"):
            try:
                chunks = self.client.api.get_image(ref)
                with open(tmp, "wb") as fh:
                    for chunk in chunks:
                        fh.write(chunk)
            except BaseException as exc:
                tmp.unlink(missing_ok=True)  # no half export left behind
                if isinstance(exc, docker.errors.ImageNotFound):
                    raise BadInput(f"the engine has no image {ref}", "build it first") from None
                raise
        tmp.replace(destination)
        return destination

    def save_stream(self, ref: str) -> Iterator[bytes]:
        """`docker save` one image as a stream of chunks (a docker-archive tarball), for
        readers that need not keep it."""
        import docker.errors

        with translated(f"exporting {ref}"), refused(f"exporting {ref}"):
            try:
                yield from self.client.api.get_image(ref)
            except docker.errors.ImageNotFound:
                raise BadInput(f"the engine has no image {ref}", "build or pull it first") from None

    def load_stream(self, chunks: Iterable[bytes], what: str) -> list[str]:
        """`docker load` a docker-archive given as a stream of chunks (never whole in memory);
        returns the loaded image IDs or tags."""
        with translated(f"loading {what}"):
            events = self.client.api.load_image(iter(chunks))
        return _loaded(events, what)

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        with translated(f"tagging {image_id}"):
            if not self.client.api.tag(image_id, repository, tag, force=True):
                raise EnvironmentFailure(
                    f"the engine refused to tag {image_id} as {repository}:{tag}"
                )

    def tagged_images(self, repository_prefix: str) -> list[ImageInfo]:
        """Local images with a tag in a repository starting with ``repository_prefix``
        (``repo_tags`` lists all their tags; ``labels`` is empty: inspect for those)."""
        with translated("listing images"), refused("listing images"):
            images = self.client.api.images(all=False)
        out = []
        for image in images or []:
            tags = tuple(str(t) for t in image.get("RepoTags") or () if t != "<none>:<none>")
            if any(t.startswith(repository_prefix) for t in tags):
                out.append(
                    ImageInfo(
                        id=str(image["Id"]),
                        repo_tags=tags,
                        repo_digests=tuple(str(d) for d in image.get("RepoDigests") or ()),
                        labels={},
                        created=str(image.get("Created", "")),
                        size=int(image.get("Size") or 0),
                    )
                )
        return out

    def untag(self, ref: str) -> str | None:
        """Remove the tag ``ref`` (and the image, when it was its last tag and no container
        uses it); never forced. None when done, else why the engine refused."""
        import docker.errors

        with translated(f"removing {ref}"):
            try:
                self.client.api.remove_image(ref, force=False, noprune=False)
            except docker.errors.ImageNotFound:
                return None
            except docker.errors.APIError as exc:
                return str(exc.explanation or exc)
        return None

    def remove_image(self, ref: str) -> None:
        import docker.errors

        with translated(f"removing {ref}"), suppress(docker.errors.ImageNotFound):
            self.client.api.remove_image(ref, force=True, noprune=False)

    def build(
        self,
        context: Path,
        *,
        labels: dict[str, str],
        no_cache: bool = False,
        on_event: Callable[[BuildEvent], None] | None = None,
        log: Path | None = None,
    ) -> str:
        """Build ``context/Dockerfile`` without tagging; returns the image ID.

        A failing step raises BuildFailed (exit 1) naming the step and the last output lines.
        """
        import docker.errors

        reader = _BuildReader(on_event, log)
        log_fh = open(log, "w", encoding="utf-8") if log else None  # noqa: SIM115
        try:
            with translated("building"):
                try:
                    stream = self.client.api.build(
                        path=str(context),
                        dockerfile="Dockerfile",
                        rm=True,
                        forcerm=True,
                        nocache=no_cache,
                        pull=False,
                        labels=labels,
                        decode=True,
                    )
                    reader.read(stream, log_fh)
                except docker.errors.APIError as exc:
                    raise reader.failed(str(exc.explanation or exc)) from None
        finally:
            if log_fh:
                log_fh.close()
        if reader.image_id is None:
            raise EnvironmentFailure("the engine finished the build without an image ID")
        return reader.image_id


class _BuildReader:
    """Follows a build's JSON stream: the current step, the last lines, the image ID."""

    def __init__(self, on_event: Callable[[BuildEvent], None] | None, log: Path | None) -> None:
        self.on_event = on_event
        self.log = log
        self.step: str | None = None
        self.tail: deque[str] = deque(maxlen=15)
        self.image_id: str | None = None

    def failed(self, detail: str) -> BuildFailed:
        return BuildFailed(detail.strip(), self.step, list(self.tail), self.log)

    def read(self, stream: Iterable[dict[str, Any]], log_fh: IO[str] | None) -> None:
        for chunk in stream:
            if "aux" in chunk and isinstance(chunk["aux"], dict):
                self.image_id = chunk["aux"].get("ID") or self.image_id
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                if log_fh:
                    log_fh.write(f"ERROR: {detail}\n")
                raise self.failed(str(detail))
            text = str(chunk.get("stream") or chunk.get("status") or "")
            for line in text.splitlines():
                if log_fh:
                    log_fh.write(line + "\n")
                self.line(line)

    def line(self, line: str) -> None:
        m = STEP_RE.match(line)
        if m:
            self.step = f"step {m.group(1)}: {m.group(2)}"
            self.tail.clear()
        elif line.strip():
            self.tail.append(line.rstrip())
        if self.on_event:
            self.on_event(BuildEvent(line, self.step if m else None))
