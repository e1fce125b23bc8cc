// The strongest flows of a run (after `apd flows`) with the patterns they pass through.
// In Neo4j Browser: `:param run => 'digits-test'`, `:param top => 10`, then run it to see the graph.
// Parameters: $run (string), $top (int).
// Columns: flow (node), pattern (node), fid (int), strength (int), purity (float), errors (int),
//          layer (int), pattern_uid (string); ordered by strength descending, fid, layer.
MATCH (f:Flow)
WHERE f.run = $run
WITH f
ORDER BY f.strength DESC, f.fid
LIMIT $top
MATCH (f)-[:THROUGH]->(p:Pattern)
RETURN f AS flow, p AS pattern, f.fid AS fid, f.strength AS strength, f.purity AS purity, f.errors AS errors,
       p.layer AS layer, p.uid AS pattern_uid
ORDER BY strength DESC, fid, layer
