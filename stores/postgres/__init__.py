"""PostgreSQL plumbing shared by the PostgreSQL stores: engine, schema, vector search."""
