"""Operations: what keeps the platform running day to day (dead runs, alerts)."""
