// Neo4j bulk property update on existing relationships, one batch (backend variant: LadybugDB
// uses LOAD FROM).
// Template: {table} a relationship type, {src} and {dst} its end labels, from the schema;
// {props} the updated property columns as a map literal (queries.ColumnMap).
// Parameters: $c (a map of equal-length lists: src and dst uids, one per property).
// Columns: written (rows whose relationship exists; the adapter refuses a batch that names a
// missing one).
UNWIND range(0, size($c.src) - 1) AS i
MATCH (a:{src} {uid: $c.src[i]})-[e:{table}]->(b:{dst} {uid: $c.dst[i]})
SET e += {props}
RETURN count(e) AS written
