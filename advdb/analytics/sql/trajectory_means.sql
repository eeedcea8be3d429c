-- Mean trajectory per run and iteration: softmax and logit of the initial and target class,
-- the added perturbation (step) and the gradient size. Feeds Figs. 1–4.
-- `iteration_sums` holds per (run, iteration) counts and sums of the trajectory columns,
-- kept up to date with the store (equivalent to averaging `trajectory` grouped by
-- run_id, iteration — which is what it computes when the columnar copy is off).
-- Parameters: $runs (list of run ids).
SELECT run_id, iteration,
       sum(n)::BIGINT AS images,
       sum(sum_p_init) / sum(n) AS p_init, sum(sum_p_target) / sum(n) AS p_target,
       sum(sum_z_init) / sum(n) AS z_init, sum(sum_z_target) / sum(n) AS z_target,
       sum(sum_step_l2) / sum(n) AS step_l2, sum(sum_grad_l2) / sum(n) AS grad_l2,
       sum(sum_l2) / sum(n) AS l2
FROM iteration_sums
WHERE list_contains($runs, run_id)
GROUP BY run_id, iteration
ORDER BY run_id, iteration;
