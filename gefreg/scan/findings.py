"""What a scanner found, in one shape for every scanner: the input of the scan policy.

Trivy reports vulnerabilities, secrets and misconfigurations; hadolint reports Dockerfile
findings. Each becomes a :class:`Finding` with a :class:`Severity` on Trivy's scale (hadolint
levels are mapped onto it: error=HIGH, warning=MEDIUM, info=LOW, style=UNKNOWN).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any


class Severity(IntEnum):
    """Trivy's severity scale, ordered so that ``>=`` compares against a threshold."""

    UNKNOWN = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str | None) -> Severity:
        """Trivy's spelling (``"HIGH"``); anything unexpected is UNKNOWN, never an error."""
        try:
            return cls[(text or "UNKNOWN").upper()]
        except KeyError:
            return cls.UNKNOWN


HADOLINT_SEVERITY = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "info": Severity.LOW,
    "style": Severity.UNKNOWN,
}


class FindingClass(StrEnum):
    """The classes a policy sets a threshold for; the values are the policy file's keys."""

    VULNERABILITY = "vulnerabilities"
    SECRET = "secrets"
    MISCONFIGURATION = "misconfigurations"
    DOCKERFILE = "dockerfile"

    @property
    def singular(self) -> str:
        return {
            FindingClass.VULNERABILITY: "vulnerability",
            FindingClass.SECRET: "secret",
            FindingClass.MISCONFIGURATION: "misconfiguration",
            FindingClass.DOCKERFILE: "dockerfile",
        }[self]


@dataclass(frozen=True)
class Finding:
    """One finding. ``id`` is the CVE/GHSA id, the secret rule, the check (DS-0002, DL3008).

    ``path`` is a file inside the image (secret, language package, config file) or the
    Dockerfile hadolint checked; ``target`` is Trivy's result target (e.g. "img (debian 12)").
    """

    kind: FindingClass
    id: str
    severity: Severity
    title: str
    target: str
    package: str | None = None
    installed: str | None = None
    fixed: str | None = None
    status: str | None = None
    path: str | None = None
    line: int | None = None
    end_line: int | None = None
    url: str | None = None

    @property
    def has_fix(self) -> bool:
        return bool(self.fixed)

    def where(self) -> str:
        """The package (with versions) or the file:line this finding is about."""
        if self.package:
            text = f"{self.package} {self.installed or '?'}"
            return text + (f" (fixed in {self.fixed})" if self.fixed else " (no fix yet)")
        place = self.path or self.target
        return f"{place}:{self.line}" if self.line else place

    def describe(self) -> str:
        """One line naming everything needed to act on the finding."""
        return f"{self.kind.singular} {self.id} [{self.severity.name}] {self.where()}: {self.title}"

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.kind.value,
            "id": self.id,
            "severity": self.severity.name,
            "title": self.title,
            "target": self.target,
            "package": self.package,
            "installed": self.installed,
            "fixed": self.fixed,
            "status": self.status,
            "path": self.path,
            "line": self.line,
            "end_line": self.end_line,
            "url": self.url,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(
            kind=FindingClass(data["class"]),
            id=str(data["id"]),
            severity=Severity.parse(data.get("severity")),
            title=str(data.get("title") or ""),
            target=str(data.get("target") or ""),
            package=data.get("package"),
            installed=data.get("installed"),
            fixed=data.get("fixed"),
            status=data.get("status"),
            path=data.get("path"),
            line=data.get("line"),
            end_line=data.get("end_line"),
            url=data.get("url"),
        )
