"""Requests to addresses a customer chose: the SSRF guard every one goes through (``guard``)
and the bounded media fetch built on it (``fetch``)."""
