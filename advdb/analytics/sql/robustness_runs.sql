-- The full attacks the worst case over attacks adds by default (report robustness): the newest
-- finished run of each of $attacks (IFGS, CW, L-BFGS) on one classifier and dataset.
-- Parameters: $classifier_id, $dataset_id, $attacks (list of attack names).
SELECT run_id, attack, iterations, n_images
FROM (
    SELECT r.run_id, r.attack, r.iterations, r.n_images,
           row_number() OVER (PARTITION BY r.attack ORDER BY r.run_id DESC) AS newest
    FROM runs r
    WHERE r.kind = 'attack' AND r.status = 'finished' AND list_contains($attacks, r.attack)
      AND r.classifier_id = $classifier_id AND r.dataset_id = $dataset_id
)
WHERE newest = 1
ORDER BY run_id;
