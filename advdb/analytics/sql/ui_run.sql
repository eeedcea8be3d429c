-- One run for `advdb ui`'s run page: its row, its model and what it has committed.
-- Parameters: $run.
SELECT r.*, c.name AS model, d.name AS dataset,
       (SELECT count(*) FROM batches b WHERE b.run_id = r.run_id) AS batches,
       (SELECT coalesce(sum(b.n_rows), 0) FROM batches b WHERE b.run_id = r.run_id) AS trajectory_rows,
       (SELECT coalesce(sum(b.attack_seconds), 0) FROM batches b WHERE b.run_id = r.run_id) AS attack_seconds,
       (SELECT count(*) FROM samples s WHERE s.run_id = r.run_id) AS images_done,
       (SELECT count(first_success_iter) FROM samples s WHERE s.run_id = r.run_id) AS succeeded,
       (SELECT count(*) FROM artifacts a WHERE a.run_id = r.run_id) AS image_files
FROM runs r
LEFT JOIN classifiers c USING (classifier_id)
LEFT JOIN datasets d USING (dataset_id)
WHERE r.run_id = $run
