-- Subspace analysis per source × mode, threshold $h: the share of all image-iterations in
-- S1/S2/S3, and the mean number of iterations an image spends in each before it first
-- reaches the target (over the images that reach it).
-- Parameters: $runs (list of run ids), $h (confidence threshold).
WITH labelled AS (
    SELECT t.run_id, t.image_id, t.iteration,
           CASE WHEN t.p_target >= $h THEN 3
                WHEN greatest(t.p_init, t.p_other) >= $h THEN 1
                ELSE 2 END AS subspace
    FROM trajectory t
    WHERE list_contains($runs, t.run_id)
),
shares AS (
    SELECT run_id,
           avg((subspace = 1)::INT) AS share_s1,
           avg((subspace = 2)::INT) AS share_s2,
           avg((subspace = 3)::INT) AS share_s3
    FROM labelled GROUP BY run_id
),
before_success AS (
    SELECT l.run_id, l.image_id,
           count(*) FILTER (WHERE l.subspace = 1) AS s1,
           count(*) FILTER (WHERE l.subspace = 2) AS s2,
           count(*) FILTER (WHERE l.subspace = 3) AS s3
    FROM labelled l
    JOIN samples s ON s.run_id = l.run_id AND s.image_id = l.image_id
    WHERE s.first_success_iter IS NOT NULL AND l.iteration < s.first_success_iter
    GROUP BY l.run_id, l.image_id
)
SELECT r.loss, r.mode, r.run_id,
       sh.share_s1, sh.share_s2, sh.share_s3,
       avg(b.s1) AS iters_s1_before_success,
       avg(b.s2) AS iters_s2_before_success,
       avg(b.s3) AS iters_s3_before_success
FROM runs r
JOIN shares sh USING (run_id)
LEFT JOIN before_success b USING (run_id)
GROUP BY r.loss, r.mode, r.run_id, sh.share_s1, sh.share_s2, sh.share_s3
ORDER BY r.mode, r.loss;
