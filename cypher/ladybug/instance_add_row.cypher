// Upgrade a store made before Instance.row existed: the source row of those instances is unknown (-1).
// Parameters: none. Columns: none.
ALTER TABLE Instance ADD row INT64 DEFAULT -1
