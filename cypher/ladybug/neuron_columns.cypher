// LadybugDB catalogue: the properties of the Neuron table, to upgrade stores made before
// `apd neurons` stored statistics on it.
// Parameters: none. Columns: name (string).
CALL table_info('Neuron') RETURN name
