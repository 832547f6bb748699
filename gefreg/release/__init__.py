"""Releases: publishing immutable versions with their evidence (scan verdict, golden tests), the
append-only release ledger and yanks, the version rules, verify/repair against the registry,
the review of catalog pull requests, listing and showing releases, and signing: keys, the
trust policy, cosign-layout signatures and attestations, and the one trust decision every
consumer of a release makes."""
