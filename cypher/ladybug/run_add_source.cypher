// Upgrade a store made before coarse runs existed: its runs were all ingested (no source, no neurons).
// Parameters: none. Columns: none.
ALTER TABLE Run ADD source STRING DEFAULT '';
ALTER TABLE Run ADD neurons STRING DEFAULT ''
