"""Compliance: de-identification, deletion requests and the lineage audit."""
