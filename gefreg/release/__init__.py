"""Releases: publishing immutable versions with their evidence (scan verdict, golden tests), the
append-only release ledger, the version rules, verify/repair against the registry, and the
review of catalog pull requests."""
