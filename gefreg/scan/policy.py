"""The scan policy: which findings block an image, which are excepted, and until when.

A policy is YAML. The catalog's ``CATALOG/policy.yaml`` applies to every image; an entry's
``CATALOG/<name>/policy.yaml`` overrides its settings key by key and adds exceptions::

    severity-threshold:          # lowest severity that blocks, per finding class
      vulnerabilities: high      # any | low | medium | high | critical | none
      secrets: any
      misconfigurations: high
      dockerfile: error          # also hadolint's levels: error | warning | info | style
    ignore-unfixed: false        # vulnerabilities without a fixed version never block
    vulnerability-db-unavailable: block   # or warn: what to do when no vulnerability DB
    exceptions:
      - id: CVE-2019-18276       # a CVE/GHSA id, a secret rule, a check id (DS-0002, DL3008)
        package: bash            # optional: only this package ...
        path: /opt/app/*.pem     # optional: ... or only this file (a glob)
        reason: bash never runs with elevated privileges in this service
        expires: 2025-06-30      # the exception stops applying after this day

Evaluation is a pure function of the findings, the policy and the date ``today``. Reading and
merging the files is :mod:`gefreg.scan.policy_file`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from gefreg.scan.findings import Finding, FindingClass, Severity

THRESHOLD_KEY = "severity-threshold"
IGNORE_UNFIXED_KEY = "ignore-unfixed"
DB_UNAVAILABLE_KEY = "vulnerability-db-unavailable"
EXCEPTIONS_KEY = "exceptions"
TOP_KEYS = (THRESHOLD_KEY, IGNORE_UNFIXED_KEY, DB_UNAVAILABLE_KEY, EXCEPTIONS_KEY)

# A threshold is the lowest severity that blocks; None means the class never blocks.
Threshold = Severity | None
THRESHOLD_WORDS: dict[str, Threshold] = {
    "any": Severity.UNKNOWN,
    "unknown": Severity.UNKNOWN,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
    "none": None,
}
DEFAULT_THRESHOLDS: dict[FindingClass, Threshold] = {
    FindingClass.VULNERABILITY: Severity.HIGH,
    FindingClass.SECRET: Severity.UNKNOWN,
    FindingClass.MISCONFIGURATION: Severity.HIGH,
    FindingClass.DOCKERFILE: Severity.HIGH,
}


class DbUnavailable(StrEnum):
    BLOCK = "block"
    WARN = "warn"


def threshold_name(threshold: Threshold) -> str:
    if threshold is None:
        return "none"
    return "any" if threshold is Severity.UNKNOWN else threshold.name.lower()


@dataclass(frozen=True)
class PolicyException:
    """A finding (by id, optionally narrowed to a package or a path) the policy accepts."""

    id: str
    reason: str
    expires: date
    package: str | None = None
    path: str | None = None
    source: str = ""

    def is_active(self, today: date) -> bool:
        """An exception applies up to and including its ``expires`` day."""
        return today <= self.expires

    def matches(self, finding: Finding) -> bool:
        if finding.id.casefold() != self.id.casefold():
            return False
        if self.package is not None and finding.package != self.package:
            return False
        if self.path is not None:
            where = finding.path or finding.target
            if not fnmatchcase(where.lstrip("/"), self.path.lstrip("/")):
                return False
        return True

    def describe(self) -> str:
        scope = "".join(
            f" {k}={v}" for k, v in (("package", self.package), ("path", self.path)) if v
        )
        text = f"{self.id}{scope} (expires {self.expires.isoformat()}): {self.reason}"
        return f"{text} [{self.source}]" if self.source else text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "package": self.package,
            "path": self.path,
            "reason": self.reason,
            "expires": self.expires.isoformat(),
            "source": self.source,
        }


@dataclass(frozen=True)
class PolicySource:
    path: Path
    sha256: str


@dataclass(frozen=True)
class Policy:
    thresholds: tuple[tuple[FindingClass, Threshold], ...] = tuple(DEFAULT_THRESHOLDS.items())
    ignore_unfixed: bool = False
    db_unavailable: DbUnavailable = DbUnavailable.BLOCK
    exceptions: tuple[PolicyException, ...] = ()
    sources: tuple[PolicySource, ...] = ()

    def threshold(self, kind: FindingClass) -> Threshold:
        return dict(self.thresholds)[kind]

    def blocks(self, finding: Finding) -> bool:
        limit = self.threshold(finding.kind)
        return limit is not None and finding.severity >= limit

    def rules_json(self) -> dict[str, Any]:
        """The effective rules (no file names): what :attr:`sha256` is computed over."""
        return {
            THRESHOLD_KEY: {k.value: threshold_name(v) for k, v in self.thresholds},
            IGNORE_UNFIXED_KEY: self.ignore_unfixed,
            DB_UNAVAILABLE_KEY: self.db_unavailable.value,
            EXCEPTIONS_KEY: [
                {k: v for k, v in e.to_json().items() if k != "source"} for e in self.exceptions
            ],
        }

    @property
    def sha256(self) -> str:
        text = json.dumps(self.rules_json(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "files": [{"path": str(s.path), "sha256": s.sha256} for s in self.sources],
            "rules": self.rules_json(),
        }


# --------------------------------------------------------------------------------------------
# Evaluation


class Outcome(StrEnum):
    BLOCKED = "blocked"
    EXCEPTED = "excepted"
    UNFIXED_IGNORED = "ignored-unfixed"
    BELOW_THRESHOLD = "below-threshold"


@dataclass(frozen=True)
class Decision:
    """What the policy did with one finding, and why."""

    finding: Finding
    outcome: Outcome
    exception: PolicyException | None = None
    expired_exception: PolicyException | None = None

    def why(self, policy: Policy) -> str:
        if self.outcome is Outcome.EXCEPTED and self.exception is not None:
            return f"exception: {self.exception.describe()}"
        if self.outcome is Outcome.UNFIXED_IGNORED:
            return "ignore-unfixed: no fixed version is available"
        limit = threshold_name(policy.threshold(self.finding.kind))
        if self.outcome is Outcome.BELOW_THRESHOLD:
            return f"below the {self.finding.kind.value} threshold ({limit})"
        text = f"at or above the {self.finding.kind.value} threshold ({limit})"
        if self.expired_exception is not None:
            text += f"; its exception expired: {self.expired_exception.describe()}"
        return text

    def to_json(self, policy: Policy) -> dict[str, Any]:
        return {
            "finding": self.finding.to_json(),
            "outcome": self.outcome.value,
            "why": self.why(policy),
            "exception": self.exception.to_json() if self.exception else None,
        }


@dataclass(frozen=True)
class Verdict:
    policy: Policy
    today: date
    decisions: tuple[Decision, ...]
    expired: tuple[PolicyException, ...] = ()
    stale: tuple[PolicyException, ...] = ()
    unverified: tuple[PolicyException, ...] = ()
    vulnerabilities_evaluated: bool = True

    def _with(self, outcome: Outcome) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.outcome is outcome)

    @property
    def blocking(self) -> tuple[Decision, ...]:
        return self._with(Outcome.BLOCKED)

    @property
    def suppressed(self) -> tuple[Decision, ...]:
        return self._with(Outcome.EXCEPTED) + self._with(Outcome.UNFIXED_IGNORED)

    @property
    def below_threshold(self) -> tuple[Decision, ...]:
        return self._with(Outcome.BELOW_THRESHOLD)

    @property
    def db_blocks(self) -> bool:
        return (
            not self.vulnerabilities_evaluated and self.policy.db_unavailable is DbUnavailable.BLOCK
        )

    @property
    def passed(self) -> bool:
        return not self.blocking and not self.db_blocks

    def reasons(self) -> list[str]:
        """Why the image is blocked, one line each (empty when it passed)."""
        out = [f"blocked by {d.finding.describe()}" for d in self.blocking]
        if self.db_blocks:
            out.append(
                "vulnerabilities were not evaluated (no vulnerability DB) and the "
                f"policy says {DB_UNAVAILABLE_KEY}: block"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        policy = self.policy
        return {
            "passed": self.passed,
            "today": self.today.isoformat(),
            "reasons": self.reasons(),
            "blocking": [d.to_json(policy) for d in self.blocking],
            "suppressed": [d.to_json(policy) for d in self.suppressed],
            "below_threshold": [d.to_json(policy) for d in self.below_threshold],
            "exceptions": {
                "expired": [e.to_json() for e in self.expired],
                "stale": [e.to_json() for e in self.stale],
                "unverified": [e.to_json() for e in self.unverified],
            },
        }


def _decide(
    finding: Finding,
    policy: Policy,
    active: list[PolicyException],
    expired: list[PolicyException],
    used: set[int],
) -> Decision:
    for i, exception in enumerate(active):
        if exception.matches(finding):
            used.add(i)
            return Decision(finding, Outcome.EXCEPTED, exception=exception)
    if policy.ignore_unfixed and finding.kind is FindingClass.VULNERABILITY and not finding.has_fix:
        return Decision(finding, Outcome.UNFIXED_IGNORED)
    if not policy.blocks(finding):
        return Decision(finding, Outcome.BELOW_THRESHOLD)
    lapsed = next((e for e in expired if e.matches(finding)), None)
    return Decision(finding, Outcome.BLOCKED, expired_exception=lapsed)


def evaluate(
    findings: Iterable[Finding],
    policy: Policy,
    *,
    today: date,
    vulnerabilities_evaluated: bool = True,
) -> Verdict:
    """Decide every finding. Exceptions past their ``expires`` day stop applying and are
    listed as expired; active ones that matched nothing are stale (or, when the vulnerability
    scan did not run, unverified: they may be for a vulnerability nobody looked for)."""
    active = [e for e in policy.exceptions if e.is_active(today)]
    expired = [e for e in policy.exceptions if not e.is_active(today)]
    used: set[int] = set()
    ordered = sorted(set(findings), key=_finding_order)
    decisions = tuple(_decide(f, policy, active, expired, used) for f in ordered)
    unmatched = tuple(e for i, e in enumerate(active) if i not in used)
    return Verdict(
        policy=policy,
        today=today,
        decisions=decisions,
        expired=tuple(expired),
        stale=unmatched if vulnerabilities_evaluated else (),
        unverified=() if vulnerabilities_evaluated else unmatched,
        vulnerabilities_evaluated=vulnerabilities_evaluated,
    )


def _finding_order(f: Finding) -> tuple[int, int, str, str, str]:
    classes = list(FindingClass)
    return (classes.index(f.kind), -int(f.severity), f.id, f.package or "", f.path or f.target)
