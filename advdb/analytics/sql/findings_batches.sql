-- Seconds per image-iteration of every committed batch of the selected runs of the unified
-- iteration (finding 5 compares the sources' costs, batch by batch).
-- Parameters: $runs (list of run ids).
SELECT r.loss, r.mode, b.batch_index, b.attack_seconds / b.n_rows AS seconds_per_image_iteration
FROM batches b JOIN runs r USING (run_id)
WHERE list_contains($runs, b.run_id) AND r.attack = 'unified' AND b.n_rows > 0
ORDER BY r.mode, r.loss, b.batch_index;
