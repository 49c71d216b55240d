"""The medical QA knowledge base: QA files → normalised documents → a Chroma index → retrieval.

``inbox`` lists and lands the KB files, ``records`` reads and validates them, ``text``
normalises text and derives ``doc_id``, ``tables`` shapes the warehouse rows, ``embedders`` turns
text into vectors, ``store`` keeps the Chroma collection in step with the documents,
``retrieval`` (with ``lexical`` for BM25) is the search API used by synthesis, the agent loop and
evaluation, ``evaluation`` measures it. Nothing here imports Dagster.
"""
