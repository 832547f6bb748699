"""Judging images and records: Trivy and hadolint behind one finding type, the scan policy with
its expiring exceptions, the scan cache and report formats (table, JSON, SARIF), and `lint`,
the static checks of records and their rendered Dockerfiles."""
