{#- Characters of every patient and doctor turn of a turns_json dialogue: the size of the text,
    so staging can pass on how much was said without passing on what. -#}
{% macro turn_chars(column) -%}
    list_sum(list_transform(
        from_json({{ column }}, '["MAP(VARCHAR, VARCHAR)"]'),
        turn -> list_sum(list_transform(map_values(turn), text -> length(coalesce(text, ''))))
    ))
{%- endmacro %}

{#- The retrieval rounds of an ark_paths.rounds_json, typed: [{results: [{query, hits, refined}]}]. -#}
{% macro ark_rounds(column) -%}
    from_json({{ column }}, '[{"results": [{"query": "VARCHAR", "hits": [{"doc_id": "VARCHAR", "score": "DOUBLE"}], "refined": "JSON"}]}]')
{%- endmacro %}

{#- The types of the PHI placeholders ([NAME_1], [PHONE_2] …) in a text, one entry per
    occurrence: how much de-identified text a layer carries, never what was replaced. -#}
{% macro phi_placeholders(text) -%}
    regexp_extract_all({{ text }}, '\[(PHONE|ID|MRN|EMAIL|URL|IP|DATE|ADDRESS|HOSPITAL|NAME)_[0-9]+\]', 1)
{%- endmacro %}
