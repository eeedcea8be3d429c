-- Share of images in each subspace (Definition IV.1) per run and iteration, threshold $h:
--   S3: p_target ≥ h;  S1: some class other than the target has p ≥ h;  S2: neither.
-- Parameters: $runs (list of run ids), $h (confidence threshold).
SELECT t.run_id, t.iteration,
       avg((t.p_target < $h AND greatest(t.p_init, t.p_other) >= $h)::INT) AS s1,
       avg((t.p_target < $h AND greatest(t.p_init, t.p_other) < $h)::INT) AS s2,
       avg((t.p_target >= $h)::INT) AS s3
FROM trajectory t
WHERE list_contains($runs, t.run_id)
GROUP BY t.run_id, t.iteration
ORDER BY t.run_id, t.iteration;
