// Every instance's pattern at every hidden layer, with its labels: the input of backward splitting.
// Parameters: $run (string).
// Columns: idx (int), layer (int), key (string), label (int), pred (int), correct (bool).
MATCH (i:Instance)-[:ACTIVATES]->(p:Pattern)
WHERE i.run = $run
RETURN i.idx AS idx, p.layer AS layer, p.key AS key, i.label AS label, i.pred AS pred, i.correct AS correct
