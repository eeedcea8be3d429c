-- Finished attack runs with what reports select them by (newest first).
SELECT r.run_id, r.attack, r.loss, r.mode, r.classifier_id, r.dataset_id, r.iterations, r.n_images,
       r.created_at, c.name AS classifier, d.name AS dataset, d.kind AS dataset_kind,
       coalesce(json_extract_string(r.config, '$.precision'), 'fp32') AS precision,
       coalesce(json_extract_string(r.config, '$.resolved.execution.compiled'),
                json_extract_string(r.config, '$.compile'), 'false') = 'true' AS compiled,
       coalesce(json_extract_string(r.config, '$.resolved.execution.memory_format'), 'contiguous') AS memory_format
FROM runs r
LEFT JOIN classifiers c USING (classifier_id)
LEFT JOIN datasets d USING (dataset_id)
WHERE r.kind = 'attack' AND r.status = 'finished'
ORDER BY r.run_id DESC;
