// LadybugDB bulk node load from a pandas DataFrame (backend variant: Neo4j has no COPY).
// Template: {table} a node label, {columns} its frame's columns, both from the schema.
// Parameters: $df (DataFrame). Columns: none.
COPY {table}({columns}) FROM $df
