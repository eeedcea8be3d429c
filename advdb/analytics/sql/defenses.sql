-- Input-transformation defenses (`advdb defend`): per transformation, source run and
-- strength, among the images still adversarial on the attacked model (the stored file, as
-- saved), the share still classified as the target after the transformation (the attack
-- survives), and among their genuine originals the share still classified correctly (what
-- the defense costs). Strength 0 is no transformation. Per transformation and source run,
-- the newest finished defense run that evaluated it.
-- Parameters: $runs (list of source attack run ids).
WITH latest AS (
    SELECT d.source_run_id, json_extract_string(r.config, '$.transform') AS transform, max(d.run_id) AS run_id
    FROM defense_results d JOIN runs r ON r.run_id = d.run_id
    WHERE r.status = 'finished' AND list_contains($runs, d.source_run_id)
    GROUP BY d.source_run_id, transform
)
SELECT l.transform, s.loss, s.mode, d.source_run_id, d.strength, l.run_id AS defense_run_id,
       count(*) AS images,
       sum(d.still_target::INT)::BIGINT AS still_target_n,
       avg(d.still_target::INT) AS still_target,
       avg(d.genuine_correct::INT) AS genuine_correct
FROM latest l
JOIN defense_results d ON d.run_id = l.run_id AND d.source_run_id = l.source_run_id
JOIN artifacts a ON a.run_id = d.source_run_id AND a.image_id = d.image_id
JOIN runs s ON s.run_id = d.source_run_id
WHERE a.still_adversarial::BOOLEAN
GROUP BY l.transform, s.loss, s.mode, d.source_run_id, d.strength, l.run_id
ORDER BY l.transform, s.mode, s.loss, d.strength;
