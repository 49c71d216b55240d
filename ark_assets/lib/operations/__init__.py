"""Operations logic without Dagster: alert payloads and their delivery."""
