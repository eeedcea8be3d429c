-- Per run and iteration: the mean softmax and logit of the initial and the target class
-- (from the per-iteration sums, so it costs a few thousand rows on any store).
-- Parameters: $runs (list of run ids).
SELECT run_id, iteration, n,
       sum_p_init / n AS p_init, sum_p_target / n AS p_target,
       sum_z_init / n AS z_init, sum_z_target / n AS z_target, sum_l2 / n AS l2
FROM iteration_sums
WHERE list_contains($runs, run_id)
ORDER BY run_id, iteration
