// One instance's path through the APD: its pattern at every hidden layer and its predicted label.
// Neo4j Browser draws the NEXT and PREDICTS edges between the returned nodes ("connect result nodes").
// In Neo4j Browser: `:param run => 'digits-test'`, `:param idx => 0`.
// Parameters: $run (string), $idx (int).
// Columns: instance (node), pattern (node), predicted (node), layer (int), pattern_uid (string),
//          support (int), pred (int), correct (bool); ordered by layer.
MATCH (i:Instance)
WHERE i.run = $run AND i.idx = $idx
MATCH (i)-[:ACTIVATES]->(p:Pattern)
MATCH (l:Label)
WHERE l.run = $run AND l.value = i.pred
RETURN i AS instance, p AS pattern, l AS predicted, p.layer AS layer, p.uid AS pattern_uid, p.support AS support,
       i.pred AS pred, i.correct AS correct
ORDER BY layer
