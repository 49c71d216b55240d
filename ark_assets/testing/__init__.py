"""Test doubles for the tests and benchmarks: never imported by ``lib/`` or ``defs/``.

They ship in the package (not only in ``ark_assets_tests/``) because ``make bench`` and the GPU
bench script run from an installed wheel and need them too: a scripted OpenAI-compatible
endpoint (``scripted_endpoint``), an in-memory retriever (``retriever``), tiny random-weight
models (``tiny``), a synthetic dialogue generator (``dialogues``) and the seeded fake-PHI
evaluation set (``phi_eval``). ``ark_assets_tests/test_layout.py`` enforces the boundary.
"""
