-- Fig. 6: the 2-D circles experiment's gradient-magnitude grid per source, from the latest
-- finished circles run. Parameters: none.
WITH latest AS (
    SELECT max(run_id) AS run_id FROM runs WHERE kind = 'circles' AND status = 'finished'
)
SELECT g.run_id, g.loss, g.ix, g.iy, g.x, g.y, g.grad_norm, g.pred, g.p_target
FROM circle_grid g JOIN latest USING (run_id)
ORDER BY g.loss, g.iy, g.ix;
