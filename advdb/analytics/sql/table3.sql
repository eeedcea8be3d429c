-- Table III: detectors trained on genuine images and every source at once; accuracy on each
-- source's adversarial images, on all adversarial, on genuine and overall, per architecture:
-- of the finished all-sources runs of each architecture (one per optimiser setting after
-- `advdb retrain --sweep`), the one with the best overall held-out accuracy (ties: the
-- newest), with its setting and how many settings were tried; per classifier the sources
-- attacked. Parameters: none.
WITH detectors AS (
    SELECT r.run_id, json_extract_string(r.config, '$.arch') AS arch,
           json_extract_string(r.config, '$.optimizer') || ' '
               || CAST(CAST(json_extract(r.config, '$.lr') AS DOUBLE) AS VARCHAR) AS setting,
           o.accuracy AS overall,
           (SELECT any_value(c.name) FROM detector_results x
                JOIN runs s ON s.run_id = x.source_run_id
                JOIN classifiers c ON c.classifier_id = s.classifier_id
            WHERE x.run_id = r.run_id) AS classifier
    FROM runs r JOIN detector_results o ON o.run_id = r.run_id AND o.group_name = 'overall'
    WHERE r.kind = 'detector' AND r.status = 'finished' AND json_extract_string(r.config, '$.setting') = 'all-sources'
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY classifier, arch ORDER BY overall DESC, run_id DESC) AS best,
           count(DISTINCT setting) OVER (PARTITION BY classifier, arch) AS settings
    FROM detectors
)
SELECT d.arch, d.run_id, d.setting, d.settings, d.classifier,
       CASE WHEN dr.source_run_id IS NOT NULL THEN coalesce(src.loss, src.attack) ELSE dr.group_name END AS "group",
       dr.accuracy, dr.n_images
FROM ranked d
JOIN detector_results dr ON dr.run_id = d.run_id
LEFT JOIN runs src ON src.run_id = dr.source_run_id
WHERE d.best = 1
ORDER BY d.classifier, d.arch, dr.source_run_id NULLS LAST, dr.group_name;
