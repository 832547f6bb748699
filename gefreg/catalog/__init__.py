"""The catalog: service and base records (YAML in, validated specs out), finding and loading
entries, the base lock, scaffolding new entries, and the pip locks and wheels they ship."""
