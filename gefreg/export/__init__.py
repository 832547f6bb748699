"""Hand a published release over to other engines, exactly: CWL for cwltool and Toil (and
through Toil to Slurm, Kubernetes, …), job files for many folders, and RO-Crates of runs."""
