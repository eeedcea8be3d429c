-- Per image of each run: the first iteration at the target and, for each norm, the smallest
-- perturbation ‖xₙ − x₀‖ among the iterations at which it was classified as the target
-- (NULL if it never was). Each norm's minimum is taken on its own. It is an upper bound on the
-- image's true minimal adversarial perturbation: the smallest one this attack's path passed
-- through, on the float trajectory. Feeds the perturbation-budget curves (report curves).
-- Parameters: $runs (list of run ids).
-- `target_minima` holds, per image with rows at its target, their count and the smallest
-- linf/l2/l1 among them, kept up to date with the store (the same aggregate of
-- `trajectory` joined with `samples` on pred = target — which is what it computes when the
-- columnar copy is off).
SELECT s.run_id, s.image_id, s.target, s.first_success_iter,
       m.min_linf::DOUBLE AS min_linf, m.min_l2::DOUBLE AS min_l2, m.min_l1::DOUBLE AS min_l1
FROM samples s
LEFT JOIN target_minima m ON m.run_id = s.run_id AND m.image_id = s.image_id
WHERE list_contains($runs, s.run_id)
ORDER BY s.run_id, s.image_id;
