"""Running a pinned image on mounted data: which image a run uses, the plan, the hardened
execution, the run record, tree manifests and their comparison, output ownership, golden
tests, and reproducing a recorded run."""
