"""ark-assets: a Dagster asset graph that turns doctor-patient dialogues into ask-or-tell models."""
