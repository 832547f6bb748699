"""The GEF instance: a GA4GH TES 1.1 API that runs only catalog releases through the hardened
runner, and a web catalog (served live, or written as a static site).

Owns, by concern:

* the API: tes_models (the TES 1.1 documents), api (the routes), views (a task as MINIMAL,
  BASIC or FULL), auth and tokens (bearer tokens, hashed at rest; web sessions),
  body_limit (the cap on request bodies), app (the one ASGI application), config (what an
  instance trusts and where it keeps things);
* a task's life: admission (what a submitted task may do) and task_plan (what it decided,
  kept with the task), releases (which image an executor may name), store (tasks in
  SQLite), worker (the queue and cancellation), execution (one task start to end);
* data in and out: urls (what a URL points at, and whether it may be fetched), fetch
  (HTTP with every redirect checked), pids (B2SHARE/DataCite/Handle records to files),
  staging and content_cache (inputs by content hash), delivery (outputs to data roots);
* the web catalog: catalog_view (what it shows), pages (the HTML), web (served live),
  site (written as a static site).
"""
