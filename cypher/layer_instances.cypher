// Every instance of a run with its predicted label and its pattern at one hidden layer: the
// input of `apd neighbours` (Hamming distances between patterns) and `apd neurons`.
// Parameters: $run (string), $layer (int, 1-based hidden layer).
// Columns: instance (string, Instance uid), idx (int), pred (int), pattern (string, Pattern
//          uid), bits (string, the pattern's hex bits).
MATCH (i:Instance)-[:ACTIVATES]->(p:Pattern)
WHERE i.run = $run AND p.layer = $layer
RETURN i.uid AS instance, i.idx AS idx, i.pred AS pred, p.uid AS pattern, p.bits AS bits
