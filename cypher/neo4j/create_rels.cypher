// Neo4j bulk relationship write, one batch (backend variant: LadybugDB uses COPY).
// Template: {table} a relationship type, {src} and {dst} its end labels, from the schema.
// Parameters: $rows (list of maps {src: uid, dst: uid, props: map}). Columns: written (rows whose
// end nodes exist; the adapter refuses a batch that names a missing node).
UNWIND $rows AS r
MATCH (a:{src} {uid: r.src})
MATCH (b:{dst} {uid: r.dst})
CREATE (a)-[e:{table}]->(b)
SET e = r.props
RETURN count(e) AS written
