-- Mean trajectory per run and iteration: softmax and logit of the initial and target class,
-- the added perturbation (step) and the gradient size. Feeds Figs. 1–4.
-- Parameters: $runs (list of run ids).
SELECT t.run_id, t.iteration,
       count(*) AS images,
       avg(t.p_init) AS p_init, avg(t.p_target) AS p_target,
       avg(t.z_init) AS z_init, avg(t.z_target) AS z_target,
       avg(t.step_l2) AS step_l2, avg(t.grad_l2) AS grad_l2,
       avg(t.l2) AS l2
FROM trajectory t
WHERE list_contains($runs, t.run_id)
GROUP BY t.run_id, t.iteration
ORDER BY t.run_id, t.iteration;
