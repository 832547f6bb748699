"""Running a pinned image on mounted data, and what rests on running it.

Owns: which image a target names (image_choice, through the release package's trust
decision); the plan from command-line words (plan, ports, request); the hardened run
itself (prepare → container → delivery: folders, staging, hardening, logs, ownership,
execute; log_tail, the end of a failed run's log, safe to show); the run record (record,
its reader recorded, crate for RO-Crates); tree manifests and their comparison
(tree_walk, tree_manifest, compare); golden tests (service_tests) and the publish evidence
they give with the scan (evidence); reproducing a recorded run (reproduce); and
`gefreg clean` (cleanup).
"""
