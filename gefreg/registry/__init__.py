"""The OCI registry client every stage uses (transport, authentication, credentials, pipelined
HEADs) and the embedded CNCF Distribution server. Knows registries, not catalogs."""
