"""Warehouse layer: the dbt project in ``dbt_like_sql/`` (staging views and marts over the tables
the Python assets write), loaded with dagster-dbt as group ``warehouse``."""
