-- Where one attacked image comes from and where its adversarial file is.
-- Parameters: $run, $image.
SELECT s.image_id, s.label, s.target, s.first_success_iter, s.final_pred, s.success_l2, s.final_l2,
       i.idx, d.kind AS dataset_kind, d.name AS dataset, d.root AS dataset_root, d.image_shape, a.path, a.format, a.sha256
FROM samples s
JOIN images i USING (image_id)
JOIN datasets d USING (dataset_id)
LEFT JOIN artifacts a ON a.run_id = s.run_id AND a.image_id = s.image_id
WHERE s.run_id = $run AND s.image_id = $image
