"""The pipeline's stages, one module per queue, each read top to bottom as claim → work → record.

``segment`` and ``media`` prepare a message, ``carrier`` hands its segments over, ``receipts``
applies what the carrier reports, ``callbacks`` tells the customer, ``sweep`` (run by beat)
catches whatever the broker lost. The tasks that run them are in ``workers/tasks.py``.
"""
