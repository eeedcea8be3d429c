-- Adversarial image files of the images attacked by every one of $runs (for Fig. 5),
-- with the genuine image's dataset index and path. Parameters: $runs, $k (images).
WITH common AS (
    SELECT image_id FROM artifacts
    WHERE list_contains($runs, run_id)
    GROUP BY image_id HAVING count(DISTINCT run_id) = len($runs)
    ORDER BY image_id LIMIT $k
)
SELECT a.run_id, a.image_id, a.path, a.format, a.sha256, i.idx, i.path AS genuine_path, i.label,
       s.target, s.final_pred, d.name AS dataset, d.kind AS dataset_kind, d.root AS dataset_root
FROM artifacts a
JOIN common USING (image_id)
JOIN images i USING (image_id)
JOIN datasets d USING (dataset_id)
JOIN samples s ON s.run_id = a.run_id AND s.image_id = a.image_id
WHERE list_contains($runs, a.run_id)
ORDER BY a.image_id, a.run_id;
