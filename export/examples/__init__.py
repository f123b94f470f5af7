"""Reference models for the export framework's tests, docs and runtime benchmarks."""
