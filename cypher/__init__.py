"""Named Cypher statements shipped with the toolkit (this folder is the package `toolkit.cypher`)."""
