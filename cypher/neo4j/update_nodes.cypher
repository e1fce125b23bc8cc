// Neo4j bulk property update on existing nodes, one batch (backend variant: LadybugDB uses LOAD FROM).
// Template: {table} a node label from the schema.
// Parameters: $rows (list of maps {uid: uid, props: map}). Columns: written (rows whose
// node exists; the adapter refuses a batch that names a missing node).
UNWIND $rows AS r
MATCH (n:{table} {uid: r.uid})
SET n += r.props
RETURN count(n) AS written
