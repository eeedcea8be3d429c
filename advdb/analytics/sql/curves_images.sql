-- Per image of each run: the first iteration at the target and, for each norm, the smallest
-- perturbation ‖xₙ − x₀‖ among the iterations at which it was classified as the target
-- (NULL if it never was). Each norm's minimum is taken on its own. It is an upper bound on the
-- image's true minimal adversarial perturbation: the smallest one this attack's path passed
-- through, on the float trajectory. Feeds the perturbation-budget curves (report curves).
-- Parameters: $runs (list of run ids).
WITH s AS (
    SELECT run_id, image_id, target, first_success_iter
    FROM samples
    WHERE list_contains($runs, run_id)
),
m AS (
    SELECT t.run_id, t.image_id, min(t.linf) AS min_linf, min(t.l2) AS min_l2, min(t.l1) AS min_l1
    FROM trajectory t
    JOIN s ON s.run_id = t.run_id AND s.image_id = t.image_id
    WHERE list_contains($runs, t.run_id) AND t.pred = s.target
    GROUP BY ALL
)
SELECT s.run_id, s.image_id, s.target, s.first_success_iter,
       m.min_linf::DOUBLE AS min_linf, m.min_l2::DOUBLE AS min_l2, m.min_l1::DOUBLE AS min_l1
FROM s LEFT JOIN m ON m.run_id = s.run_id AND m.image_id = s.image_id
ORDER BY s.run_id, s.image_id;
