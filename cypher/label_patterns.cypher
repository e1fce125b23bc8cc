// The distinct patterns of one hidden layer of a run, with how many instances of each true
// label have them: the input of the maximal patterns (MBH), read instead of recomputed.
// Parameters: $run (string), $layer (int, 1-based hidden layer).
// Columns: uid (string, Pattern uid), bits (string, hex states), label (int, true label),
//          n (int, instances of that label with that pattern); ordered by uid, then label.
MATCH (i:Instance)-[:ACTIVATES]->(p:Pattern)
WHERE i.run = $run AND p.layer = $layer
RETURN p.uid AS uid, p.bits AS bits, i.label AS label, count(i) AS n
ORDER BY uid, label
