"""`gefreg review` of a change to ``CATALOG/trust.yaml``: the file must stay valid, and what
protects releases must not be quietly undone — a revoked key stays listed and revoked, and a
key id keeps its key (a new key gets a new id). Weakening the policy (require-signatures
turned off, a key added or allowed more entries) is legal but listed for the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gefreg.errors import InvalidRecord
from gefreg.release import trust_policy
from gefreg.release.trust_policy import TrustPolicy


@dataclass(frozen=True)
class TrustReview:
    changed: bool
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"changed": self.changed, "problems": list(self.problems), "notes": list(self.notes)}


def _policy(text: str | None, path: Path) -> TrustPolicy:
    from ruamel.yaml import YAML

    if text is None:
        return TrustPolicy(path, exists=False)
    return trust_policy.parse(YAML(typ="rt").load(text), path)


def review_trust(old_text: str | None, new_text: str | None, path: Path) -> TrustReview:
    """Compare trust.yaml at the base revision (``old_text``) with the change (``new_text``);
    None means the file does not exist there."""
    if old_text == new_text:
        return TrustReview(changed=False)
    try:
        new = _policy(new_text, path)
    except InvalidRecord as exc:
        return TrustReview(True, tuple(str(p) for p in exc.problems))
    except Exception as exc:  # ruamel's syntax errors: the message is what matters
        return TrustReview(True, (f"{path}: not valid YAML: {exc}",))
    try:
        old = _policy(old_text, path)
    except Exception:
        return TrustReview(True, (), ("the base revision's trust.yaml was invalid",))
    problems, notes = _earlier_keys(old, new, path)
    notes += _new_keys(old, new)
    if old.require_signatures and not new.require_signatures:
        notes.append("require-signatures turned off: unsigned releases will run again")
    return TrustReview(True, tuple(problems), tuple(notes))


def _earlier_keys(old: TrustPolicy, new: TrustPolicy, path: Path) -> tuple[list[str], list[str]]:
    """(problems, notes) about the keys the base revision had: a revoked key stays listed and
    revoked, a key id keeps its key; removals and new entries are noted."""
    problems: list[str] = []
    notes: list[str] = []
    by_print = {k.public_key.fingerprint: k for k in new.keys}
    for before in old.keys:
        after = new.key(before.id)
        same_key = by_print.get(before.public_key.fingerprint)
        if before.revoked is not None and (same_key is None or same_key.revoked is None):
            problems.append(
                f"{path}: key {before.id!r} was revoked ({before.revoked.reason}); a revoked "
                "key stays listed and revoked"
            )
        if after is not None and after.public_key != before.public_key:
            problems.append(
                f"{path}: key {before.id!r} now has another public key; give a new key a new id"
            )
        if after is None and before.revoked is None:
            notes.append(f"key {before.id!r} removed: its signatures are no longer accepted")
        elif after is not None and set(after.entries) != set(before.entries):
            notes.append(
                f"key {before.id!r} may now sign {', '.join(after.entries)} "
                f"(was {', '.join(before.entries)})"
            )
    return problems, notes


def _new_keys(old: TrustPolicy, new: TrustPolicy) -> list[str]:
    """Notes on keys added or newly revoked by the change."""
    notes: list[str] = []
    for key in new.keys:
        earlier = old.key(key.id)
        if earlier is None:
            notes.append(
                f"key {key.id!r} added ({key.public_key.fingerprint}) for {', '.join(key.entries)}"
            )
        if key.revoked is not None and (earlier is None or earlier.revoked is None):
            notes.append(f"key {key.id!r} revoked: {key.revoked.reason}")
    return notes
