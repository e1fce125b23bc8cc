// Every instance of a run with its final cluster (null cluster and size before `apd split`):
// the per-instance input of the report's cluster-size charts.
// Parameters: $run (string).
// Columns: idx (int), label (int), pred (int), correct (bool), forgetting (int), cluster (int or null), size (int or null).
MATCH (i:Instance)
WHERE i.run = $run
OPTIONAL MATCH (i)-[:`IN`]->(c:Cluster)
RETURN i.idx AS idx, i.label AS label, i.pred AS pred, i.correct AS correct, i.forgetting AS forgetting,
       c.cid AS cluster, c.size AS size
ORDER BY idx
