// Every run in the store with its provenance.
// Parameters: none.
// Columns: run, model, model_hash, factory, dataset, split, epoch, arch, created, instances, layers, accuracy.
MATCH (r:Run)
RETURN r.run AS run, r.model AS model, r.model_hash AS model_hash, r.factory AS factory,
       r.dataset AS dataset,
       r.split AS split, r.epoch AS epoch, r.arch AS arch, r.created AS created,
       r.instances AS instances, r.layers AS layers, r.accuracy AS accuracy
ORDER BY run
