// Neuron statistics per hidden layer of a run (after `apd neurons`): how many neurons, how
// many never / always active, the mean activation rate and the mean share of instances whose
// state flips since the previous snapshot (-1 when no previous snapshot was compared).
// Parameters: $run (string).
// Columns: layer (int), neurons (int), dead (int, rate 0), always (int, rate 1),
//          mean_rate (float), mean_flips (float); ordered by layer.
MATCH (n:Neuron)
WHERE n.run = $run AND n.rate IS NOT NULL
RETURN n.layer AS layer, count(n) AS neurons,
       sum(CASE WHEN n.active = 0 THEN 1 ELSE 0 END) AS dead,
       sum(CASE WHEN n.rate = 1.0 THEN 1 ELSE 0 END) AS always,
       avg(n.rate) AS mean_rate, avg(n.flips) AS mean_flips
ORDER BY layer
