-- The target's margin at the last iteration, per source and mode: z_t minus the largest
-- other logit (the initial class's or the strongest third class's). A source that stops
-- pushing once the image is confidently the target (CE and CE-sign in S3) ends nearer the
-- decision boundary than one that keeps raising z_t (the logit sources): the paper's reason
-- to expect its images to transfer less and to break more easily under input
-- transformations (Section V). Margin > 0: the image is the target at T.
-- Parameters: $runs (list of run ids).
WITH m AS (
    SELECT t.run_id, t.z_target - greatest(t.z_init, t.z_other) AS margin
    FROM trajectory t JOIN runs r USING (run_id)
    WHERE list_contains($runs, t.run_id) AND r.attack = 'unified' AND t.iteration = r.iterations
)
SELECT r.loss, r.mode, r.run_id, count(*) AS images,
       avg(m.margin) AS margin_mean,
       stddev_samp(m.margin) AS margin_std,
       avg(m.margin) - 1.96 * stddev_samp(m.margin) / sqrt(count(*)) AS margin_ci_lo,
       avg(m.margin) + 1.96 * stddev_samp(m.margin) / sqrt(count(*)) AS margin_ci_hi,
       quantile_cont(m.margin, 0.1) AS margin_p10,
       quantile_cont(m.margin, 0.5) AS margin_median,
       avg((m.margin > 0)::INT) AS target_at_end
FROM m JOIN runs r USING (run_id)
GROUP BY r.loss, r.mode, r.run_id
ORDER BY r.mode, r.loss;
