"""The GEF instance: a GA4GH TES 1.1 API that runs only catalog releases through the hardened
runner, and a web catalog (served live, or written as a static site).

Modules: tokens (bearer tokens, hashed at rest), tes_models (the TES 1.1 document types),
store (tasks in SQLite), admission (what a submitted task may do), staging (inputs into a
per-task folder, cached by content hash), pids (B2SHARE/DataCite/Handle records), delivery
(outputs to data roots), worker (the task queue and the runs), api (the TES routes),
catalog_view, web and site (the catalog pages), app (the FastAPI application).
"""
