// One run's shape, to check that it exists and how many hidden layers it has.
// Parameters: $run (string).
// Columns: layers (int, hidden layers L), epoch (int), instances (int, Instance nodes of the run).
MATCH (r:Run)
WHERE r.run = $run
OPTIONAL MATCH (i:Instance)
WHERE i.run = $run
RETURN r.layers AS layers, r.epoch AS epoch, count(i) AS instances
