-- Table II: detectors trained on genuine images and one source's adversarial images;
-- test accuracy per source (rows) × detector architecture (columns), the latest finished
-- detector run of each pair. Parameters: none.
WITH detectors AS (
    SELECT r.run_id, json_extract_string(r.config, '$.arch') AS arch, r.created_at
    FROM runs r WHERE r.kind = 'detector' AND r.status = 'finished' AND json_extract_string(r.config, '$.setting') = 'single-source'
),
results AS (
    SELECT d.arch, src.loss, src.mode, src.attack, dr.accuracy, dr.n_images, d.run_id,
           row_number() OVER (PARTITION BY d.arch, src.loss, src.mode, src.attack ORDER BY d.run_id DESC) AS newest
    FROM detectors d
    JOIN detector_results dr ON dr.run_id = d.run_id AND dr.group_name = 'overall'
    JOIN detector_results ds ON ds.run_id = d.run_id AND ds.source_run_id IS NOT NULL
    JOIN runs src ON src.run_id = ds.source_run_id
)
SELECT arch, coalesce(loss, attack) AS source, mode, accuracy, n_images, run_id
FROM results WHERE newest = 1
ORDER BY source, arch;
