-- The perturbation (L1, L2 of x' − x) at the first iteration classified as the target,
-- one row per image that reached it. Feeds the box plots of Figs. 2(c) and 3(c).
-- Parameters: $runs (list of run ids).
SELECT s.run_id, s.image_id, s.first_success_iter, s.success_l1, s.success_l2, s.success_linf
FROM samples s
WHERE list_contains($runs, s.run_id) AND s.first_success_iter IS NOT NULL
ORDER BY s.run_id, s.image_id;
