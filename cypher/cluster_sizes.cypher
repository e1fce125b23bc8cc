// Instances, errors and forgetting events per final-cluster size (after `apd split`).
// Parameters: $run (string).
// Columns: size (int), clusters (int), instances (int), errors (int), forgetting (int).
MATCH (i:Instance)-[:`IN`]->(c:Cluster)
WHERE i.run = $run
RETURN c.size AS size, count(DISTINCT c) AS clusters, count(i) AS instances,
       sum(CASE WHEN i.correct THEN 0 ELSE 1 END) AS errors, sum(i.forgetting) AS forgetting
ORDER BY size
