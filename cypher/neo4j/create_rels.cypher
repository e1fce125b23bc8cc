// Neo4j bulk relationship write, one batch (backend variant: LadybugDB uses COPY).
// Template: {table} a relationship type, {src} and {dst} its end labels, from the schema;
// {props} its property columns as a map literal (queries.ColumnMap, may be empty).
// Parameters: $c (a map of equal-length lists: src and dst uids, one per property).
// Columns: written (rows whose end nodes exist; the adapter refuses a batch that names a
// missing node).
UNWIND range(0, size($c.src) - 1) AS i
MATCH (a:{src} {uid: $c.src[i]})
MATCH (b:{dst} {uid: $c.dst[i]})
CREATE (a)-[e:{table} {props}]->(b)
RETURN count(e) AS written
