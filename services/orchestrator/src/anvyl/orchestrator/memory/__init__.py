"""Memory and knowledge: what finished tasks learned and the user's archives, searched by meaning.

`base.Memory` is the interface; `store.DatabaseMemory` keeps it in Anvyl's own database (FTS5 on
SQLite, tsvector on PostgreSQL, optional embedding vectors), `cognee_backend.CogneeMemory` in
cognee. `indexer.ArchiveIndexer` feeds archives in; `tool.search_knowledge_tool` lets the model ask.
"""
