// The instances of one final cluster of backward splitting (after `apd split`), with their patterns.
// In Neo4j Browser: `:param run => 'digits-test'`, `:param cid => 42`.
// Parameters: $run (string), $cid (int).
// Columns: cluster (node), instance (node), pattern (node), idx (int), label (int), pred (int),
//          layer (int); ordered by idx, layer.
MATCH (c:Cluster)
WHERE c.run = $run AND c.cid = $cid
MATCH (i:Instance)-[:`IN`]->(c)
MATCH (i)-[:ACTIVATES]->(p:Pattern)
RETURN c AS cluster, i AS instance, p AS pattern, i.idx AS idx, i.label AS label, i.pred AS pred, p.layer AS layer
ORDER BY idx, layer
