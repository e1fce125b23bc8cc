// Neo4j bulk node write, one batch (backend variant: LadybugDB uses COPY).
// Template: {table} a node label from the schema.
// Parameters: $rows (list of property maps, uid unique). Columns: none.
UNWIND $rows AS r
CREATE (n:{table})
SET n = r
