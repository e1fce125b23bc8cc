// One run's shape, to check that it exists and how many hidden layers it has.
// Parameters: $run (string).
// Columns: layers (int, hidden layers L), epoch (int), instances (int, Instance nodes of the run),
//   history_only (bool: a run of `apd train --record-every`, Epoch nodes only).
MATCH (r:Run)
WHERE r.run = $run
OPTIONAL MATCH (i:Instance)
WHERE i.run = $run
RETURN r.layers AS layers, r.epoch AS epoch, count(i) AS instances, r.history_only AS history_only
