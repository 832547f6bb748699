"""The catalog: service and base records (YAML in, validated specs out), finding and loading
entries (the one rule turning a command-line target into an entry), the base lock, scaffolding
new entries and new catalogs, and the pip locks and wheels they ship."""
