-- Table I: per source × mode, the iterations needed to first reach the target
-- (mean ± std over the images that reached it, and the 95 % confidence interval of that
-- mean, normal approximation), the success rate, and the attack time for all T iterations
-- (seconds, whole run and per image).
-- Parameters: $runs (list of run ids).
WITH timing AS (
    SELECT run_id, sum(attack_seconds) AS attack_seconds
    FROM batches WHERE list_contains($runs, run_id) GROUP BY run_id
)
SELECT r.loss, r.mode, r.run_id, r.iterations,
       count(*) AS images,
       avg((s.first_success_iter IS NOT NULL)::INT) AS success_rate,
       avg(s.first_success_iter) AS iterations_mean,
       stddev_samp(s.first_success_iter) AS iterations_std,
       avg(s.first_success_iter) - 1.96 * stddev_samp(s.first_success_iter) / sqrt(count(s.first_success_iter))
           AS iterations_ci_lo,
       avg(s.first_success_iter) + 1.96 * stddev_samp(s.first_success_iter) / sqrt(count(s.first_success_iter))
           AS iterations_ci_hi,
       any_value(tm.attack_seconds) AS attack_seconds,
       any_value(tm.attack_seconds) / count(*) AS seconds_per_image
FROM runs r
JOIN samples s USING (run_id)
JOIN timing tm USING (run_id)
WHERE list_contains($runs, r.run_id)
GROUP BY r.loss, r.mode, r.run_id, r.iterations
ORDER BY r.mode, r.loss;
