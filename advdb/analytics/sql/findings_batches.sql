-- Seconds per image-iteration of every committed batch of the selected runs of the unified
-- iteration, with its mode: finding 5 compares the sources' costs batch by batch within one
-- mode at a time, never pooling the modes. A batch's attack_seconds excludes warm-up (the first
-- batch of each shape in a process is preceded by an untimed one: advdb.execution.warm_up).
-- Parameters: $runs (list of run ids).
SELECT r.loss, r.mode, b.batch_index, b.attack_seconds / b.n_rows AS seconds_per_image_iteration
FROM batches b JOIN runs r USING (run_id)
WHERE list_contains($runs, b.run_id) AND r.attack = 'unified' AND b.n_rows > 0
ORDER BY r.mode, r.loss, b.batch_index;
