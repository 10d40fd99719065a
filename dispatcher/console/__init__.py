"""The operator console: a process of its own (``mycpaas console``), pages over the record."""
