// Neo4j bulk node write, one batch (backend variant: LadybugDB uses COPY).
// Template: {table} a node label from the schema; {props} its columns as a map literal
// (queries.ColumnMap). Parameters: $c (a map of equal-length lists, one per column, uid
// among them: unique). Columns: none.
UNWIND range(0, size($c.uid) - 1) AS i
CREATE (n:{table} {props})
