"""The hardening policy of every run, the container spec that carries it, and the check that
the engine applied it.

On every run (:data:`HARDENED`): no network (``network_mode=none``), a read-only root file
system with a 64 MiB tmpfs at ``/tmp`` (``noexec,nosuid,nodev``), every capability dropped,
``no-new-privileges``, a non-root user, and pids, memory (swap = memory) and CPU limits. After
the container is created and before it starts, the engine's own view of it (``docker
inspect``, :func:`applied`) is compared with what was asked (:func:`mismatches`); any
difference refuses the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gefreg.engine import BindMount, ContainerSpec, ContainerState, Ulimit
from gefreg.image.interface import ServiceInterface
from gefreg.limits import NOFILE
from gefreg.model import Resources

RUN_LABEL = "org.gefreg.run"
LOG_DRIVER = "none"  # the engine keeps no copy: gefreg captures the output (gefreg.run.logs)
SERVICE_LABEL = "org.gefreg.service"


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


def container_spec(
    service: ServiceInterface,
    image_id: str,
    *,
    args: Sequence[str],
    inputs: Mapping[str, Path],
    outputs: Mapping[str, Path],
    user: str,
    limits: Resources,
    run_id: str,
    hardening: Hardening = HARDENED,
) -> ContainerSpec:
    """The container of one run: ``service``'s command and ``args``, the port folders mounted
    at the service's paths (inputs read-only and non-recursively), the limits and the policy."""
    targets = {p.name: p.path for p in (*service.inputs, *service.outputs)}
    mounts = [BindMount(path, targets[port], True, True) for port, path in inputs.items()]
    mounts += [BindMount(path, targets[port], False) for port, path in outputs.items()]
    return ContainerSpec(
        image=image_id,
        command=(*service.command, *args),
        user=user,
        mounts=tuple(mounts),
        labels=((RUN_LABEL, run_id), (SERVICE_LABEL, service.name)),
        network=hardening.network,
        read_only=hardening.read_only_rootfs,
        tmpfs=hardening.tmpfs,
        cap_drop=hardening.cap_drop,
        security_opt=hardening.security_opt,
        memory=limits.memory,
        nano_cpus=round(limits.cpus * 1e9),
        pids=limits.pids,
        name=container_name(run_id),
        entrypoint=service.entrypoint,
        ulimits=(Ulimit("nofile", NOFILE), Ulimit("fsize", limits.disk)),
        log_driver=LOG_DRIVER,
    )


def staged(
    spec: ContainerSpec, service: ServiceInterface, folders: Mapping[str, Path]
) -> ContainerSpec:
    """``spec`` with each output port mounted from its staging folder (``folders``: port ->
    host folder) instead of the user's folder."""
    by_target = {p.path: folders[p.name] for p in service.outputs if p.name in folders}
    mounts = tuple(
        m if m.read_only or m.target not in by_target
        else dataclasses.replace(m, source=by_target[m.target])
        for m in spec.mounts
    )  # fmt: skip
    return dataclasses.replace(spec, mounts=mounts)


def container_name(run_id: str) -> str:
    return "gefreg-run-" + run_id.rsplit(":", 1)[-1].replace("-", "")[:16]


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
        "ulimits": {u.get("Name"): u.get("Soft") for u in hc.get("Ulimits") or []},
        "hard_ulimits": {u.get("Name"): u.get("Hard") for u in hc.get("Ulimits") or []},
        "log_driver": (hc.get("LogConfig") or {}).get("Type"),
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
    if spec.ulimits:
        wanted["ulimits"] = wanted["hard_ulimits"] = {u.name: u.value for u in spec.ulimits}
    if spec.log_driver is not None:
        wanted["log_driver"] = spec.log_driver
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
