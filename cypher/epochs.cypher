// Distinct patterns per hidden layer, loss and accuracy at each epoch recorded during
// training (`apd train --record-every N --run NAME`), for `apd evolution --run NAME`.
// Parameters: $run (string).
// Columns: epoch (int), layer (int), patterns (int), split (string), instances (int), loss (float), accuracy (float).
MATCH (e:Epoch)
WHERE e.run = $run
RETURN e.epoch AS epoch, e.layer AS layer, e.patterns AS patterns, e.split AS split,
       e.instances AS instances, e.loss AS loss, e.accuracy AS accuracy
ORDER BY epoch, layer
