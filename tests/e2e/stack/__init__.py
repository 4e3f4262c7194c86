"""An end-to-end stack on 127.0.0.1: PostgreSQL, Redis, real NetBox + netbox-proxbox, proxbox-api.

Run as ``python -m tests.e2e.stack up|env|status|down|fault ...``; everything lives
under the cache directory (``PROXBOX_E2E_CACHE``, else ``<repo>/.cache/e2e``).
"""
