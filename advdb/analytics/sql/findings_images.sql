-- Per image of each selected run of the unified iteration: what findings 1–4 compare image by
-- image (the runs of one study attack the same images towards the same targets, so the
-- sources pair up): iterations to reach the target and L2 at that moment (NULL if never),
-- the target logit at 80 % of T and at T, the gradient size at the start and at T.
-- Parameters: $runs (list of run ids).
SELECT r.run_id, r.loss, r.mode, r.iterations AS T, s.image_id,
       s.first_success_iter AS iterations, s.success_l2,
       max(t.z_target) FILTER (WHERE t.iteration = (r.iterations * 4) // 5) AS z_t_late,
       max(t.z_target) FILTER (WHERE t.iteration = r.iterations) AS z_t_end,
       max(t.grad_l2) FILTER (WHERE t.iteration = 0) AS grad_first,
       max(t.grad_l2) FILTER (WHERE t.iteration = r.iterations) AS grad_last
FROM samples s
JOIN runs r USING (run_id)
JOIN trajectory t ON t.run_id = s.run_id AND t.image_id = s.image_id
WHERE list_contains($runs, s.run_id) AND r.attack = 'unified'
  AND t.iteration IN (0, r.iterations, (r.iterations * 4) // 5)
GROUP BY r.run_id, r.loss, r.mode, r.iterations, s.image_id, s.first_success_iter, s.success_l2
ORDER BY r.mode, r.loss, s.image_id;
