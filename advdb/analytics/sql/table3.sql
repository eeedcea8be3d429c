-- Table III: detectors trained on genuine images and every source at once; accuracy on each
-- source's adversarial images, on all adversarial, on genuine and overall, per architecture
-- (the latest finished all-sources run of each architecture). Parameters: none.
WITH detectors AS (
    SELECT r.run_id, json_extract_string(r.config, '$.arch') AS arch,
           row_number() OVER (PARTITION BY json_extract_string(r.config, '$.arch') ORDER BY r.run_id DESC) AS newest
    FROM runs r WHERE r.kind = 'detector' AND r.status = 'finished' AND json_extract_string(r.config, '$.setting') = 'all-sources'
)
SELECT d.arch, d.run_id,
       CASE WHEN dr.source_run_id IS NOT NULL THEN coalesce(src.loss, src.attack) ELSE dr.group_name END AS "group",
       dr.accuracy, dr.n_images
FROM detectors d
JOIN detector_results dr ON dr.run_id = d.run_id
LEFT JOIN runs src ON src.run_id = dr.source_run_id
WHERE d.newest = 1
ORDER BY d.arch, dr.source_run_id NULLS LAST, dr.group_name;
