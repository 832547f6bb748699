"""Registries: the OCI Distribution API client every stage uses (the transport with retries
and authentication apart from the API calls, Docker's credentials, pipelined HEADs, the media
types, the layer cache) and the embedded CNCF Distribution server (its launch and processes).
Knows registries, not catalogs."""
