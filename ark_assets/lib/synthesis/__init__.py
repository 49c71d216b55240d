"""The Ark loop: teacher-synthesized action paths (retrieve → ask or tell) for dialogue prefixes.

MedArk stages 1–3 as a pure core with no Dagster import: the record contract (``models``), the
teacher and its backends (``teacher``, ``backends``), the persistent call cache (``cache``), the
loop itself (``loop``) and entity regeneration (``entities``).
"""
