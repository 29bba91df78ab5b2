"""The domain: pure features with no I/O and no frameworks (import-linter keeps it so)."""
