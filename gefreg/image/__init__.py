"""Images: templates, the pure renderer, labels, the fingerprint, the build plan, builds through
the engine with their records and cache, curated bases, and OCI assembly by hand. An image's
runtime interface (ports, command, user, limits) is read here from records and labels."""
