-- Per run and iteration: the share of images in S1 (the initial or another class holds
-- probability ≥ h), S2 (no class does) and S3 (the target does), as in subspaces.sql.
-- Parameters: $runs (list of run ids), $h (confidence threshold).
SELECT run_id, iteration,
       avg((p_target < $h AND greatest(p_init, p_other) >= $h)::INT) AS s1,
       avg((p_target < $h AND greatest(p_init, p_other) < $h)::INT) AS s2,
       avg((p_target >= $h)::INT) AS s3
FROM trajectory
WHERE list_contains($runs, run_id)
GROUP BY ALL
ORDER BY run_id, iteration
