// Upgrade a store made before Run.history_only, Run.official_split and Run.split_note existed:
// its runs were all ingested (history_only false); how their split was drawn is unknown
// (official_split null, split_note empty).
// Parameters: none. Columns: none.
ALTER TABLE Run ADD history_only BOOLEAN DEFAULT false;
ALTER TABLE Run ADD official_split BOOLEAN;
ALTER TABLE Run ADD split_note STRING DEFAULT ''
