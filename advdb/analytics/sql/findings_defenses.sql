-- Per image and transformation, the share of the swept strengths (above 0) at which a
-- source's adversarial image is still the target: 1 survives every strength, 0 none. Only
-- images still adversarial on the attacked model, newest finished defense run per source
-- and transformation (findings: "CE is more fragile").
-- Parameters: $runs (list of source attack run ids).
WITH latest AS (
    SELECT d.source_run_id, json_extract_string(r.config, '$.transform') AS transform, max(d.run_id) AS run_id
    FROM defense_results d JOIN runs r ON r.run_id = d.run_id
    WHERE r.status = 'finished' AND list_contains($runs, d.source_run_id)
    GROUP BY d.source_run_id, transform
)
SELECT l.transform, s.loss, s.mode, d.image_id, avg(d.still_target::INT) AS survival
FROM latest l
JOIN defense_results d ON d.run_id = l.run_id AND d.source_run_id = l.source_run_id
JOIN artifacts a ON a.run_id = d.source_run_id AND a.image_id = d.image_id
JOIN runs s ON s.run_id = d.source_run_id
WHERE a.still_adversarial::BOOLEAN AND d.strength > 0
GROUP BY l.transform, s.loss, s.mode, d.image_id
ORDER BY l.transform, s.mode, s.loss, d.image_id;
