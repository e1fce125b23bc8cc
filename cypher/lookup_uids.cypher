// How many of the given uids the store finds through its uid index (LadybugDB's primary-key
// index, Neo4j's uniqueness constraint), for `apd store check`: a damaged index loses nodes
// that a scan still returns.
// Template: {table} is a node label from the schema.
// Parameters: $uids (list of strings).
// Columns: found (int).
UNWIND $uids AS u
MATCH (n:{table} {uid: u})
RETURN count(n) AS found
