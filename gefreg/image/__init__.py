"""Images: templates, the pure renderer, labels, the fingerprint, the build plan, builds through
the engine, the build record (one type, one reader) and its cache, curated bases, and OCI
assembly by hand. An image's runtime interface (ports, command, user, limits) is read here
from records and labels."""
