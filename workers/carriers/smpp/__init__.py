"""The SMPP 3.4 carrier driver: codec, sessions, receipts (see ``driver.py`` for the design)."""
