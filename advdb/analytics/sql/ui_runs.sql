-- The runs list of `advdb ui`: every run with its model and progress, newest first.
-- Parameters: $kind, $status, $loss, $mode, $model (NULL = any).
SELECT r.run_id, r.kind, r.status, r.attack, r.loss, r.mode, c.name AS model, r.n_images, r.iterations,
       coalesce(s.images, 0) AS images_done, s.succeeded, r.device, r.created_at, r.wall_seconds, r.name
FROM runs r
LEFT JOIN classifiers c USING (classifier_id)
LEFT JOIN (SELECT run_id, count(*) AS images, count(first_success_iter) AS succeeded FROM samples GROUP BY 1) s
       USING (run_id)
WHERE ($kind IS NULL OR r.kind = $kind)
  AND ($status IS NULL OR r.status = $status)
  AND ($loss IS NULL OR r.loss = $loss)
  AND ($mode IS NULL OR r.mode = $mode)
  AND ($model IS NULL OR c.name = $model)
ORDER BY r.run_id DESC
