{#- source('ark', table), or an empty relation with `columns` ({name: type}) while the table
    does not exist: for tables whose absence means "nothing yet" rather than "not built yet"
    (deletion_requests exists from the first `ark forget`). The models over every other table
    are left out of a build until it exists (defs/warehouse: source:ark.<table>+). -#}
{% macro source_or_empty(table, columns) -%}
    {%- set relation = source('ark', table) -%}
    {%- if execute and adapter.get_relation(relation.database, relation.schema, relation.identifier) is none -%}
        (select
        {%- for name, type in columns.items() %}
            cast(null as {{ type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
        where false)
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
