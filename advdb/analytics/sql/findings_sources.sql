-- Per source × mode, what the paper's findings 1–5 compare: iterations to reach the target,
-- the perturbation at that moment, the target logit late in the run and at its end, the
-- gradient size at the start and the end, and seconds per image-iteration.
-- Parameters: $runs (list of run ids).
WITH s AS (
    SELECT run_id,
           avg(first_success_iter) AS iterations,
           avg(success_l2) AS success_l2,
           avg(success_l1) AS success_l1,
           avg((first_success_iter IS NOT NULL)::INT) AS reached
    FROM samples WHERE list_contains($runs, run_id) GROUP BY run_id
),
t AS (
    SELECT t.run_id,
           avg(t.z_target) FILTER (WHERE t.iteration = r.iterations) AS z_t_end,
           avg(t.z_target) FILTER (WHERE t.iteration = (r.iterations * 4) // 5) AS z_t_late,
           avg(t.grad_l2) FILTER (WHERE t.iteration = 0) AS grad_first,
           avg(t.grad_l2) FILTER (WHERE t.iteration = r.iterations) AS grad_last
    FROM trajectory t JOIN runs r USING (run_id)
    WHERE list_contains($runs, t.run_id)
      AND (t.iteration IN (0, r.iterations, (r.iterations * 4) // 5))
    GROUP BY t.run_id
),
b AS (
    SELECT run_id, sum(attack_seconds) AS seconds, sum(n_rows) AS image_iterations
    FROM batches WHERE list_contains($runs, run_id) GROUP BY run_id
)
SELECT r.run_id, r.loss, r.mode, r.iterations AS T, s.iterations, s.success_l2, s.success_l1, s.reached,
       t.z_t_late, t.z_t_end, t.grad_first, t.grad_last, b.seconds / b.image_iterations AS seconds_per_image_iteration
FROM runs r JOIN s USING (run_id) JOIN t USING (run_id) JOIN b USING (run_id)
ORDER BY r.mode, r.loss;
