// Neo4j bulk property update on existing nodes, one batch (backend variant: LadybugDB uses LOAD FROM).
// Template: {table} a node label from the schema; {props} the updated property columns as a
// map literal (queries.ColumnMap). Parameters: $c (a map of equal-length lists: uid, one per
// property; a null removes the property). Columns: written (rows whose node exists; the
// adapter refuses a batch that names a missing node).
UNWIND range(0, size($c.uid) - 1) AS i
MATCH (n:{table} {uid: $c.uid[i]})
SET n += {props}
RETURN count(n) AS written
