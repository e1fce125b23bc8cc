// Neo4j bulk property update on existing nodes, one batch (backend variant: LadybugDB uses LOAD FROM).
// Template: {table} a node label from the schema.
// Parameters: $rows (list of maps {uid: uid, props: map}). Columns: none.
UNWIND $rows AS r
MATCH (n:{table} {uid: r.uid})
SET n += r.props
