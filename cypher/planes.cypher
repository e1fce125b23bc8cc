// The planes stored for a run (by `apd mbh` or `apd regions --save`): anchors, their dataset
// and split, and the box, from which the plane is rebuilt exactly (`apd mbh --planes-from`).
// Parameters: $run (string).
// Columns: uid (string), anchors (string, "i,j,k"), dataset (string), split (string),
//          scale (float), umin, umax, vmin, vmax (float), box_area (float), regions (int),
//          blankets (int, MEASURED edges), s (float, mean s over them or null); ordered by uid.
MATCH (p:Plane)
WHERE p.run = $run
OPTIONAL MATCH (p)-[m:MEASURED]->(:Blanket)
RETURN p.uid AS uid, p.anchors AS anchors, p.dataset AS dataset, p.split AS split, p.scale AS scale,
       p.umin AS umin, p.umax AS umax, p.vmin AS vmin, p.vmax AS vmax, p.box_area AS box_area,
       p.regions AS regions, count(m) AS blankets, avg(m.s) AS s
ORDER BY uid
