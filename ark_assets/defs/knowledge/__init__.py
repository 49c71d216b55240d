"""Knowledge layer: the medical QA knowledge base (kb_sources → kb_index → kb_retrieval_eval)."""
