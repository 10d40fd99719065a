"""Delivering status callbacks to customers' endpoints (``delivery``) and signing them
(``signing``). What is owed and its claims are the callbacks stage's (workers/stages)."""
