"""The runner: one pinned image, hardened, against mounted folders, and a record of the run.

Hardening, on every run (:data:`HARDENED`): no network (``network_mode=none``), a read-only root
file system with a 64 MiB tmpfs at ``/tmp`` (``noexec,nosuid,nodev``), every capability dropped,
``no-new-privileges``, a non-root user — the caller's ``uid:gid``, or the record's ``user``
(10001 by default) when the caller is root — and pids, memory (swap = memory) and CPU limits
and a wall-clock timeout from the record's ``resources``, overridable per run. After the
container is created and before it starts, the engine's own view of it (``docker inspect``) is
compared with what was asked; any difference refuses the run. What the engine applied is
written into the record.

Folders: each input port is bind-mounted read-only (and non-recursively) at its path, each
output port writable. Inputs must be existing folders holding no mount point; outputs are
created when missing, must be empty unless ``force`` (the runner never deletes or moves
anything: with ``force`` the service may add to the folder and overwrite what its user may
write, and the record lists what was there before), must not be on a read-only file system,
and no port folder may contain another. When the
caller is root the output folders are opened to the service's uid for the run and every file
the service made is handed back to the caller afterwards, never one that was there before; and
``force`` is refused for a folder holding entries the service's uid owns or its group may write
(see :mod:`gefreg.run.ownership`).

Order of work, and what the record says when it stops early:

1. check the folders, create the missing output folders and the record's folder (any failure
   is BadInput, before the image is checked or pulled; the folders made are removed again,
   while empty, if the run stops before a container exists), check the image, hash the
   inputs (streamed, in parallel);
2. create the container and write the record with status ``incomplete``;
3. start, wait up to the timeout (then SIGKILL: ``timed-out``), save the logs, remove it;
4. hand outputs back, hash outputs, hash inputs again (they must be unchanged);
5. write the final record: ``succeeded`` only when the service exited 0, the outputs were
   hashed and the inputs were unchanged, otherwise ``failed`` or ``timed-out``.

Ctrl-C stops and removes the container and records ``interrupted`` (then re-raises); an engine
that goes away records ``incomplete`` and raises :class:`EnvironmentFailure` (exit 3).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.engine import BindMount, ContainerSpec, ContainerState, Engine, StartFailed
from gefreg.errors import BadInput, EnvironmentFailure, GefregError
from gefreg.hashing import sha256_file
from gefreg.image.interface import ServiceInterface
from gefreg.model import Resources
from gefreg.run.compare import compare_outputs
from gefreg.run.image_choice import ResolvedImage, verify_image
from gefreg.run.ownership import (
    EntryId,
    Grant,
    entry_ids,
    first_open_to,
    first_unreadable,
    grant_write,
    hand_back,
    revoke,
)
from gefreg.run.record import (
    SCHEMA,
    check_new_files,
    default_record_path,
    gefreg_version,
    host_facts,
    log_paths,
    new_run_id,
    now,
    timestamp,
    write_record,
)
from gefreg.run.tree_manifest import TreeManifest, tree_manifests
from gefreg.settings import Settings

RUN_LABEL = "org.gefreg.run"
SERVICE_LABEL = "org.gefreg.service"
KILL_GRACE_S = 30.0


@dataclass(frozen=True)
class Hardening:
    """The container settings that are not limits. The defaults are the policy."""

    network: str = "none"
    read_only_rootfs: bool = True
    tmpfs: tuple[tuple[str, str], ...] = (("/tmp", "rw,noexec,nosuid,nodev,size=64m"),)
    cap_drop: tuple[str, ...] = ("ALL",)
    security_opt: tuple[str, ...] = ("no-new-privileges",)

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "read_only_rootfs": self.read_only_rootfs,
            "tmpfs": dict(self.tmpfs),
            "cap_drop": list(self.cap_drop),
            "security_opt": list(self.security_opt),
            "privileged": False,
        }


HARDENED = Hardening()


@dataclass(frozen=True)
class RunRequest:
    """One run, fully decided: the image, the interface, the folders, the limits."""

    image: ResolvedImage
    service: ServiceInterface
    inputs: tuple[tuple[str, Path], ...]
    outputs: tuple[tuple[str, Path], ...]
    args: tuple[str, ...] = ()
    limits: Resources | None = None
    overridden: tuple[str, ...] = ()
    record: Path | None = None
    force: bool = False
    expect_inputs: tuple[tuple[str, TreeManifest], ...] = ()
    reproduces: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class RunResult:
    status: str
    record_path: Path
    record: dict[str, Any]
    inputs: Mapping[str, TreeManifest] = field(default_factory=dict)
    outputs: Mapping[str, TreeManifest] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def exit_code(self) -> int | None:
        code = self.record.get("exit_code")
        return None if code is None else int(code)

    @property
    def error(self) -> str | None:
        error = self.record.get("error")
        return None if error is None else str(error)


class RunObserver:
    """Hears about a run's progress; the library never prints. Override what you need."""

    def status(self, text: str) -> None:
        """A step started (checking, hashing, running, ...)."""

    def hashing(self, what: str, done: int, total: int) -> None:
        """Bytes hashed so far (called from worker threads)."""


# --- folders ------------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPED = re.compile(r"\\([0-7]{3})")


def mount_points(mountinfo: Path = MOUNTINFO) -> list[Path] | None:
    """Every mount point this process sees (field 5 of ``mountinfo``, with its octal escapes
    undone), or None when the table cannot be read (not Linux, no /proc)."""
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    points = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(Path(_ESCAPED.sub(lambda m: chr(int(m.group(1), 8)), fields[4])))
    return points


def first_mount_point(root: Path, mounts: list[Path] | None) -> Path | None:
    """The first mount point strictly inside the folder ``root`` (resolved): from the mount
    table (which also shows bind mounts of the same file system), else — without one — the
    first folder found on another device (``st_dev``) while walking the tree."""
    if mounts is not None:
        inside = sorted(m for m in mounts if root in m.parents)
        return inside[0] if inside else None
    device = os.stat(root).st_dev
    stack = [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != device:
                    return Path(entry.path)
                stack.append(Path(entry.path))
    return None


def check_inputs(inputs: Mapping[str, Path]) -> dict[str, Path]:
    """Existing folders, resolved, holding no mount point. With the engine's default recursive
    bind, a mount below an input folder would be writable in the container; the runner binds
    inputs non-recursively, which hides such a mount instead — and then the run record would
    hash files the service never saw. So it is refused, naming the mount point."""
    out = {}
    mounts = mount_points()
    for port, path in inputs.items():
        try:
            if not path.exists():
                raise BadInput(f"input {port}: {path} does not exist")
            if not path.is_dir():
                raise BadInput(
                    f"input {port}: {path} is not a folder",
                    "ports are folders; put the file in one",
                )
            resolved = path.resolve()
            inner = first_mount_point(resolved, mounts)
        except OSError as exc:
            raise BadInput(f"input {port}: cannot use {path}: {exc.strerror or exc}") from None
        if inner is not None:
            raise BadInput(
                f"input {port}: {inner} is a mount point inside the input folder {path}",
                "give the mounted folder as an input port of its own, or copy the data into one "
                "folder (a file system mounted below an input is not part of it in the container)",
            )
        out[port] = resolved
    return out


def check_outputs(outputs: Mapping[str, Path], force: bool) -> dict[str, Path]:
    """Output folders, checked but not created (see :func:`make_folders`); anything the file
    system refuses while checking is BadInput naming the port and folder."""
    out = {}
    for port, path in outputs.items():
        try:
            out[port] = _check_output(port, path, force)
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (resolve)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise BadInput(f"output {port}: cannot use {path}: {reason}") from None
    return out


def _check_output(port: str, path: Path, force: bool) -> Path:
    resolved = path.resolve()
    if resolved.exists():
        if not resolved.is_dir():
            raise BadInput(f"output {port}: {path} exists and is not a folder")
        if not force and any(resolved.iterdir()):
            raise BadInput(
                f"output {port}: {path} is not empty",
                "give an empty or new folder, or --force to write into it (gefreg never "
                "deletes anything; the service may overwrite files there)",
            )
    existing = _nearest_existing(resolved)
    if not existing.is_dir():
        raise BadInput(f"output {port}: {existing} is not a folder, so {path} cannot be made")
    if _read_only_fs(existing):
        raise BadInput(
            f"output {port}: {path} is on a read-only file system",
            "choose an output folder on a writable file system",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"output {port}: {existing} is not writable for you")
    return resolved


def check_disjoint(inputs: Mapping[str, Path], outputs: Mapping[str, Path], record: Path) -> None:
    """No port folder may contain another (an output inside an input would make the input
    writable), and the record may not be inside any port (it would change what it describes)."""
    named = [(f"input {p}", f) for p, f in inputs.items()]
    named += [(f"output {p}", f) for p, f in outputs.items()]
    for i, (a_name, a) in enumerate(named):
        for b_name, b in named[i + 1 :]:
            if a_name.startswith("input") and b_name.startswith("input"):
                continue  # two inputs may share data: both are read-only
            if _inside(a, b) or _inside(b, a):
                raise BadInput(f"{a_name} ({a}) and {b_name} ({b}) overlap", "use separate folders")
        if _inside(record, a):
            raise BadInput(
                f"the run record {record} would be inside {a_name} ({a})",
                "write the record elsewhere (--record FILE)",
            )


def check_not_open_to(outputs: Mapping[str, Path], run_uid: int, run_gid: int) -> None:
    """Refuse output folders (``--force``) holding entries the service's uid owns or its group
    may write, when the service runs as another user than the caller: it could change or
    delete them, and afterwards they could not be told from its own files."""
    for port, path in outputs.items():
        if not path.is_dir() or not any(path.iterdir()):
            continue  # nothing there to protect
        found = first_open_to(path, run_uid, run_gid)
        if found is not None:
            raise BadInput(
                f"output {port}: {found} is already there and owned by, or writable for, the "
                f"service's user {run_uid}:{run_gid}",
                "the service could change or delete it, and gefreg could not tell it from the "
                "service's own files: use an empty or new output folder, or move it away",
            )


def make_folders(folders: Mapping[str, Path]) -> list[Path]:
    """Create the missing folders (``{what: folder}``, e.g. ``output result``); returns every
    folder created, parents first, for :func:`remove_made`. A folder that cannot be created
    (``-o /proc/x``) is BadInput naming it, after removing what was made."""
    made: list[Path] = []
    for what, path in folders.items():
        missing = [p for p in (path, *path.parents) if not p.exists()]
        try:
            for folder in reversed(missing):
                try:
                    folder.mkdir()
                except FileExistsError:
                    continue  # made meanwhile, not by us: checked below
                made.append(folder)
        except OSError as exc:
            remove_made(made)
            raise BadInput(
                f"{what}: cannot create {path}: {exc.strerror or exc}",
                "choose a folder on a writable file system",
            ) from None
        if not path.is_dir():
            remove_made(made)
            raise BadInput(f"{what}: {path} is not a folder")
    return made


def remove_made(made: list[Path]) -> None:
    """Remove folders :func:`make_folders` made, children first, each only while empty: what
    someone put there meanwhile stays, with the folders holding it."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()


def identities(service: ServiceInterface) -> tuple[int, int, int, int]:
    """(caller uid, caller gid, service uid, service gid): root callers run the service as the
    record's unprivileged user; everyone else as themselves."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        return uid, gid, service.user, service.user
    return uid, gid, uid, gid


# --- the container ------------------------------------------------------------------------


def container_spec(
    image_id: str,
    request: RunRequest,
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    user: str,
    limits: Resources,
    run_id: str,
    hardening: Hardening = HARDENED,
) -> ContainerSpec:
    targets = {p.name: p.path for p in (*request.service.inputs, *request.service.outputs)}
    mounts = [BindMount(path, targets[port], True, True) for port, path in inputs.items()]
    mounts += [BindMount(path, targets[port], False) for port, path in outputs.items()]
    return ContainerSpec(
        image=image_id,
        command=(*request.service.command, *request.args),
        user=user,
        mounts=tuple(mounts),
        labels=((RUN_LABEL, run_id), (SERVICE_LABEL, request.service.name)),
        network=hardening.network,
        read_only=hardening.read_only_rootfs,
        tmpfs=hardening.tmpfs,
        cap_drop=hardening.cap_drop,
        security_opt=hardening.security_opt,
        memory=limits.memory,
        nano_cpus=round(limits.cpus * 1e9),
        pids=limits.pids,
        name="gefreg-run-" + run_id.rsplit(":", 1)[-1].replace("-", "")[:16],
        entrypoint=request.service.entrypoint,
    )


def applied(state: ContainerState) -> dict[str, Any]:
    """The engine's view of the container's isolation and limits."""
    hc = state.host_config
    return {
        "user": state.user,
        "entrypoint": list(state.entrypoint),
        "network_mode": hc.get("NetworkMode"),
        "read_only_rootfs": hc.get("ReadonlyRootfs"),
        "tmpfs": hc.get("Tmpfs") or {},
        "cap_add": hc.get("CapAdd") or [],
        "cap_drop": hc.get("CapDrop") or [],
        "security_opt": hc.get("SecurityOpt") or [],
        "privileged": hc.get("Privileged"),
        "pids_limit": hc.get("PidsLimit"),
        "memory": hc.get("Memory"),
        "memory_swap": hc.get("MemorySwap"),
        "nano_cpus": hc.get("NanoCpus"),
        "mounts": [
            {
                "source": m.get("Source"),
                "target": m.get("Target"),
                "read_only": bool(m.get("ReadOnly")),
                "non_recursive": bool((m.get("BindOptions") or {}).get("NonRecursive")),
            }
            for m in hc.get("Mounts") or []
        ],
    }


def mismatches(spec: ContainerSpec, seen: Mapping[str, Any]) -> list[str]:
    """What the engine did not apply as asked (empty when everything matches)."""
    wanted: dict[str, Any] = {
        "user": spec.user,
        "network_mode": spec.network,
        "read_only_rootfs": spec.read_only,
        "tmpfs": dict(spec.tmpfs),
        "cap_add": [],
        "cap_drop": list(spec.cap_drop),
        "security_opt": list(spec.security_opt),
        "privileged": False,
        "pids_limit": spec.pids,
        "memory": spec.memory,
        "memory_swap": spec.memory,
        "nano_cpus": spec.nano_cpus,
    }
    if spec.entrypoint is not None:
        wanted["entrypoint"] = list(spec.entrypoint)
    problems = [
        f"{key}: asked {value!r}, engine has {seen.get(key)!r}"
        for key, value in wanted.items()
        if seen.get(key) != value
    ]
    asked = {(str(m.source), m.target, m.read_only, m.non_recursive) for m in spec.mounts}
    got = {
        (m["source"], m["target"], m["read_only"], m.get("non_recursive", False))
        for m in seen.get("mounts", [])
    }
    if asked != got:
        problems.append(f"mounts: asked {sorted(asked)}, engine has {sorted(got)}")
    return problems


# --- the record ---------------------------------------------------------------------------


def limits_json(limits: Resources, overridden: tuple[str, ...]) -> dict[str, Any]:
    return {
        "memory": limits.memory,
        "memory_swap": limits.memory,
        "cpus": limits.cpus,
        "nano_cpus": round(limits.cpus * 1e9),
        "pids": limits.pids,
        "timeout_s": limits.timeout,
        "from_command_line": list(overridden),
    }


def _file_facts(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"path": path.name, "sha256": None, "size": None}
    return {"path": path.name, "sha256": sha256_file(path), "size": path.stat().st_size}


def _verdict(
    exit_code: int, timed_out: bool, state: ContainerState, limits: Resources, inputs_ok: bool
) -> tuple[str, str | None]:
    if timed_out:
        return "timed-out", f"killed after the {limits.timeout:g} s timeout"
    if not inputs_ok:
        return "failed", "the inputs changed during the run"
    if state.oom_killed:
        return "failed", f"killed by the memory limit ({limits.memory} bytes): out of memory"
    if exit_code == 0:
        return "succeeded", None
    if exit_code == 137:
        return "failed", "killed (SIGKILL, exit code 137)"
    return "failed", f"the service exited with code {exit_code}"


# --- the run ------------------------------------------------------------------------------


def run_service(
    settings: Settings,
    engine: Engine,
    request: RunRequest,
    observer: RunObserver | None = None,
) -> RunResult:
    """Run ``request`` and write its record. Returns for succeeded, failed and timed-out runs;
    raises BadInput before anything starts, EnvironmentFailure when the engine fails, and
    KeyboardInterrupt after recording an interrupted run."""
    obs = observer or RunObserver()
    run_id = request.run_id or new_run_id()
    begun = now()
    service = request.service
    limits = request.limits or service.resources
    inputs = check_inputs(dict(request.inputs))
    outputs = check_outputs(dict(request.outputs), request.force)
    record_path = (
        request.record or default_record_path(settings.state_dir, service.name, run_id, begun)
    ).absolute()
    check_new_files(record_path)
    check_disjoint(inputs, outputs, record_path.resolve())
    uid, gid, run_uid, run_gid = identities(service)
    if run_uid != uid:
        for port, path in inputs.items():
            bad = first_unreadable(path, run_uid, run_gid)
            if bad is not None:
                raise BadInput(
                    f"input {port}: {bad} is not readable by the service's user {run_uid}",
                    f"the service runs unprivileged; make the input readable: chmod -R a+rX {path}",
                )
        check_not_open_to(outputs, run_uid, run_gid)
    if described_by_image(request.image, service):
        obs.status(
            f"{service.name} {request.image.version}: the ledger and the record do not describe "
            "this version; using the image's own GEF labels (ports), command and user, and "
            "default limits"
        )
    # the folders before the image: one that cannot be made is refused before any pull
    folders = {f"output {port}": path for port, path in outputs.items()}
    made = make_folders({**folders, "the run record's folder": record_path.parent})

    def progress(what: str) -> Callable[[int, int], None]:
        return lambda done, total: obs.hashing(what, done, total)

    try:
        shown = request.image.image_id[:19] or (
            f"{request.image.repository}@{request.image.manifest_digest} (pulling)"
        )
        obs.status(f"checking image {shown}")
        image = verify_image(engine, request.image)
        preexisting = {p: f for p, f in outputs.items() if any(f.iterdir())}
        obs.status("hashing inputs")
        before = tree_manifests(inputs, progress=progress("inputs"))
        _check_expected_inputs(before, dict(request.expect_inputs))
        existing = tree_manifests(preexisting) if preexisting else {}
        keep = {port: entry_ids(path) for port, path in preexisting.items()}
        host = host_facts(engine.facts())
    except BaseException:
        remove_made(made)  # only the folders this run made, and only while still empty
        raise
    user = f"{run_uid}:{run_gid}"
    spec = container_spec(image.image_id, request, inputs, outputs, user, limits, run_id)
    stdout_log, stderr_log = log_paths(record_path)
    targets = {p.name: p.path for p in (*service.inputs, *service.outputs)}
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "id": run_id,
        "status": "incomplete",
        "service": {
            "name": service.name,
            "version": service.version,
            "trusted": image.trusted,
            "user": service.user,
            "interface": service.origin,
        },
        "image": image.to_json(),
        "entrypoint": None if service.entrypoint is None else list(service.entrypoint),
        "command": list(service.command),
        "args": list(request.args),
        "container": {"id": None, "name": spec.name, "labels": dict(spec.labels)},
        "environment": {},
        "mounts": [
            {
                "side": "input" if m.read_only else "output",
                "port": port,
                "source": str(m.source),
                "target": m.target,
                "read_only": m.read_only,
            }
            for m, port in zip(spec.mounts, [*inputs, *outputs], strict=True)
        ],
        "hardening": HARDENED.to_json(),
        "limits": limits_json(limits, request.overridden),
        "applied": None,
        "caller": {"uid": uid, "gid": gid},
        "run_as": user,
        "handed_back": None,
        "created": timestamp(begun),
        "started": None,
        "ended": None,
        "duration_s": None,
        "exit_code": None,
        "oom_killed": None,
        "error": None,
        "logs": {"stdout": _file_facts(stdout_log), "stderr": _file_facts(stderr_log)},
        "inputs": {
            port: {
                "path": str(path),
                "target": targets[port],
                "manifest": before[port].to_json(),
                "unchanged": None,
                "root_after": None,
            }
            for port, path in inputs.items()
        },
        "outputs": {
            port: {
                "path": str(path),
                "target": targets[port],
                "manifest": None,
                "preexisting": existing[port].to_json() if port in existing else None,
            }
            for port, path in outputs.items()
        },
        "volatile": list(service.volatile),
        "reproduces": request.reproduces,
        "host": host,
        "gefreg_version": gefreg_version(),
    }
    grants: list[Grant] = []
    record_written = False
    container: str | None = None
    start_error: str | None = None
    t0 = time.monotonic()
    try:
        if run_uid != uid:
            grants = [grant_write(path, run_gid) for path in outputs.values()]
        container = engine.create_container(spec)
        record["container"]["id"] = container
        write_record(record_path, record, new=True)
        record_written = True
        state = engine.inspect_container(container)
        record["applied"] = applied(state)
        record["environment"] = dict(e.partition("=")[::2] for e in state.env)
        problems = mismatches(spec, record["applied"])
        if problems:
            raise EnvironmentFailure(
                "the engine did not apply the hardening asked for: " + "; ".join(problems),
                "refusing to start the service; check the engine version and its cgroups",
            )
        obs.status(
            f"running {service.name} in container {container[:12]} "
            f"(timeout {limits.timeout:g} s, memory {limits.memory // 1024**2} MiB, "
            f"{limits.cpus:g} CPUs, {limits.pids} pids)"
        )
        record["started"] = timestamp(now())
        t0 = time.monotonic()
        try:
            engine.start_container(container)
            code = engine.wait_container(container, limits.timeout)
        except StartFailed as exc:
            start_error, code = exc.message, -1
        record["ended"] = timestamp(now())
        record["duration_s"] = round(time.monotonic() - t0, 3)
        timed_out = code is None
        if timed_out:
            obs.status(f"timed out after {limits.timeout:g} s: killing the container")
            engine.kill_container(container)
            engine.wait_container(container, KILL_GRACE_S)
        state = engine.inspect_container(container)
        engine.save_logs(container, stdout_log, stderr_log)
        engine.remove_container(container)
        container = None
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        _abandon(container, stdout_log, stderr_log, save_logs=record_written)
        with contextlib.suppress(OSError):  # never hide why the run stopped
            _release(grants, outputs, run_uid, uid, gid, record, keep)
            if record["container"]["id"] is None:  # no container was made: nothing ran
                remove_made(made)
        if record_written:
            record["status"] = "interrupted" if interrupted else "incomplete"
            record["ended"] = record["ended"] or timestamp(now())
            if record["started"] and record["duration_s"] is None:
                record["duration_s"] = round(time.monotonic() - t0, 3)
            record["error"] = (
                "interrupted (Ctrl-C): the container was stopped and removed"
                if interrupted
                else (exc.message if isinstance(exc, GefregError) else repr(exc))
            )
            record["logs"] = {"stdout": _file_facts(stdout_log), "stderr": _file_facts(stderr_log)}
            write_record(record_path, record)
            if isinstance(exc, GefregError):
                exc.hint = f"{exc.hint + '; ' if exc.hint else ''}run record: {record_path}"
        raise
    _release(grants, outputs, run_uid, uid, gid, record, keep)
    obs.status("hashing outputs")
    unhashable = None
    try:
        after = tree_manifests(outputs, progress=progress("outputs"))
    except BadInput as exc:  # e.g. the service left a folder its caller cannot read
        after, unhashable = {}, f"the outputs could not be hashed: {exc.message}"
    obs.status("checking the inputs are unchanged")
    inputs_after = tree_manifests(inputs, progress=progress("inputs again"))
    inputs_ok = True
    for port, manifest in inputs_after.items():
        same = manifest.root == before[port].root
        inputs_ok = inputs_ok and same
        record["inputs"][port]["unchanged"] = same
        record["inputs"][port]["root_after"] = manifest.root
    for port, manifest in after.items():
        record["outputs"][port]["manifest"] = manifest.to_json()
    status, error = _verdict(state.exit_code, timed_out, state, limits, inputs_ok)
    if start_error:
        status, error = "failed", start_error
    elif unhashable and status == "succeeded":
        status, error = "failed", unhashable
    record.update(
        status=status,
        exit_code=state.exit_code,
        oom_killed=state.oom_killed,
        error=error,
        logs={"stdout": _file_facts(stdout_log), "stderr": _file_facts(stderr_log)},
    )
    record["container"]["started_at"] = state.started_at
    record["container"]["finished_at"] = state.finished_at
    write_record(record_path, record)
    return RunResult(status, record_path, record, before, after)


def described_by_image(image: ResolvedImage, service: ServiceInterface) -> bool:
    """Whether a catalog image runs with the interface read from the image itself."""
    return image.trusted and service.origin == "image"


def _check_expected_inputs(
    seen: Mapping[str, TreeManifest], expected: Mapping[str, TreeManifest]
) -> None:
    if not expected:
        return
    comparison = compare_outputs(expected, seen, ())
    if not comparison.identical:
        raise BadInput(
            "the inputs differ from the recorded ones:\n"
            + "\n".join("  " + line for line in comparison.lines()[:20]),
            "give the recorded inputs (--input PORT=DIR), unchanged",
        )


def _abandon(container: str | None, stdout: Path, stderr: Path, save_logs: bool) -> None:
    """Stop and remove a container after an interruption or an engine failure, as far as the
    engine still lets us; keeps what logs it can (when the record is ours; never over a file
    that exists)."""
    if container is None:
        return
    try:
        engine = Engine.connect(timeout=30)
    except GefregError:
        return
    with contextlib.suppress(Exception):
        engine.kill_container(container)
    if save_logs:
        with contextlib.suppress(Exception):
            engine.save_logs(container, stdout, stderr)
    with contextlib.suppress(Exception):
        engine.remove_container(container)


def _release(
    grants: list[Grant],
    outputs: Mapping[str, Path],
    run_uid: int,
    uid: int,
    gid: int,
    record: dict[str, Any],
    keep: Mapping[str, frozenset[EntryId]],
) -> None:
    """Undo the output folders' temporary permissions and give the service's files back (never
    an entry that was there before the run)."""
    while grants:
        revoke(grants.pop())
    if run_uid != uid:
        record["handed_back"] = sum(
            hand_back(p, run_uid, uid, gid, keep.get(port, frozenset()))
            for port, p in outputs.items()
        )
