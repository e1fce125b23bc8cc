// The last-layer patterns a class's blanket covers (after `apd mbh`), with the blanket's s.
// In Neo4j Browser: `:param run => 'digits-test'`, `:param class => 3`.
// Parameters: $run (string), $class (int).
// Columns: blanket (node), pattern (node), coverage (float), s (float), pattern_uid (string),
//          support (int), errors (int); ordered by coverage, support descending, pattern_uid.
MATCH (b:Blanket)
WHERE b.run = $run AND b.class = $class
MATCH (b)-[:COVERS]->(p:Pattern)
RETURN b AS blanket, p AS pattern, b.coverage AS coverage, b.s AS s, p.uid AS pattern_uid,
       p.support AS support, p.errors AS errors
ORDER BY coverage, support DESC, pattern_uid
