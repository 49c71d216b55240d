"""Ingest core: dialogue files → validated records → MedArk-tagged dialogues.

``inbox`` names and lands arrived files (one batch each), ``formats`` reads JSONL / JSON / long
tables, ``dialogues`` validates one record (the quarantine rules), ``batches`` turns an arrived
file into its raw and quarantine rows, ``tagging`` computes MedArk's keys and collisions, and
``tables`` holds the ingest tables' column contracts. Nothing here imports Dagster.
"""
