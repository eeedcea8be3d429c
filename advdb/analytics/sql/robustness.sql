-- Worst case over attacks (report robustness): per image attacked by every one of $runs and
-- per run, its first iteration at the target, its target and, for each norm, the smallest
-- perturbation ‖xₙ − x₀‖ at which it was classified as the target (NULL: never). An image
-- counts as broken at a budget if any run reached its target within it: the robust accuracy
-- of the union is the share of images no run broke.
-- Parameters: $runs (list of run ids).
WITH s AS (
    SELECT run_id, image_id, label, target, first_success_iter
    FROM samples
    WHERE list_contains($runs, run_id)
),
common AS (
    SELECT image_id FROM s GROUP BY image_id HAVING count(DISTINCT run_id) = len(list_distinct($runs))
),
m AS (  -- `target_minima`: per image, the smallest perturbation among its rows at the target
    SELECT run_id, image_id, min_linf, min_l2, min_l1
    FROM target_minima
    WHERE list_contains($runs, run_id)
)
SELECT s.run_id, s.image_id, s.label, s.target, s.first_success_iter,
       m.min_linf::DOUBLE AS min_linf, m.min_l2::DOUBLE AS min_l2, m.min_l1::DOUBLE AS min_l1
FROM s
SEMI JOIN common c ON c.image_id = s.image_id
LEFT JOIN m ON m.run_id = s.run_id AND m.image_id = s.image_id
ORDER BY s.image_id, s.run_id;
