-- Table II: detectors trained on genuine images and one source's adversarial images;
-- test accuracy per source (rows) × detector architecture (columns). Of the finished
-- detector runs of each pair (one per optimiser setting after `advdb retrain --sweep`), the
-- one with the best held-out accuracy (ties: the newest), with its setting and how many
-- settings were tried; per classifier the sources attacked (a study of two models, such as the
-- mnist preset's, has a table per model). Parameters: none.
WITH detectors AS (
    SELECT r.run_id, json_extract_string(r.config, '$.arch') AS arch,
           json_extract_string(r.config, '$.optimizer') || ' '
               || CAST(CAST(json_extract(r.config, '$.lr') AS DOUBLE) AS VARCHAR) AS setting
    FROM runs r WHERE r.kind = 'detector' AND r.status = 'finished' AND json_extract_string(r.config, '$.setting') = 'single-source'
),
results AS (
    SELECT d.arch, d.setting, src.loss, src.mode, src.attack, dr.accuracy, dr.n_images, d.run_id,
           c.name AS classifier,
           row_number() OVER pair_runs AS best,
           count(DISTINCT d.setting) OVER (PARTITION BY c.name, d.arch, src.loss, src.mode, src.attack) AS settings
    FROM detectors d
    JOIN detector_results dr ON dr.run_id = d.run_id AND dr.group_name = 'overall'
    JOIN detector_results ds ON ds.run_id = d.run_id AND ds.source_run_id IS NOT NULL
    JOIN runs src ON src.run_id = ds.source_run_id
    LEFT JOIN classifiers c ON c.classifier_id = src.classifier_id
    WINDOW pair_runs AS (
        PARTITION BY c.name, d.arch, src.loss, src.mode, src.attack ORDER BY dr.accuracy DESC, d.run_id DESC
    )
)
SELECT arch, coalesce(loss, attack) AS source, mode, accuracy, n_images, run_id, setting, settings, classifier
FROM results WHERE best = 1
ORDER BY classifier, source, arch;
