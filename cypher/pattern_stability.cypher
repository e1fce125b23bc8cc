// Stable patterns (all their instances get one predicted label) vs unstable ones, per layer.
// Parameters: $run (string).
// Columns: layer (int), stable (bool), patterns (int), instances (int), errors (int).
MATCH (i:Instance)-[:ACTIVATES]->(p:Pattern)
WHERE i.run = $run
WITH p, count(DISTINCT i.pred) AS preds, count(i) AS instances, sum(CASE WHEN i.correct THEN 0 ELSE 1 END) AS errors
RETURN p.layer AS layer, preds = 1 AS stable, count(p) AS patterns, sum(instances) AS instances,
       sum(errors) AS errors
ORDER BY layer, stable
