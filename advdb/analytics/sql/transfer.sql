-- Transfer of each source's adversarial images to other classifiers (`advdb transfer`):
-- among the images still adversarial on the model that made them (the stored file, as
-- saved), the share another model classifies as the attack's target (targeted transfer)
-- and as anything but the image's true class (untargeted transfer), with each source's
-- margin at the last iteration beside it (margins.sql). Per source run and other model,
-- the newest finished transfer run that evaluated it.
-- `resized`: [from, to] pixels when the other model was trained at another size and the
-- images were resized on the way in (`advdb transfer` records it), else NULL.
-- Parameters: $runs (list of source attack run ids).
WITH latest AS (
    SELECT t.source_run_id, r.classifier_id, max(t.run_id) AS run_id
    FROM transfer_results t JOIN runs r ON r.run_id = t.run_id
    WHERE r.status = 'finished' AND list_contains($runs, t.source_run_id)
    GROUP BY t.source_run_id, r.classifier_id
)
SELECT s.loss, s.mode, t.source_run_id, c.name AS model, l.run_id AS transfer_run_id,
       count(*) AS images,
       sum(t.targeted::INT)::BIGINT AS targeted_n,
       avg(t.targeted::INT) AS targeted,
       sum(t.untargeted::INT)::BIGINT AS untargeted_n,
       avg(t.untargeted::INT) AS untargeted,
       avg(t.p_target) AS p_target_mean,
       json_extract_string(tr.config, '$.resolved.resize') AS resized
FROM latest l
JOIN runs tr ON tr.run_id = l.run_id
JOIN transfer_results t ON t.run_id = l.run_id AND t.source_run_id = l.source_run_id
JOIN artifacts a ON a.run_id = t.source_run_id AND a.image_id = t.image_id
JOIN runs s ON s.run_id = t.source_run_id
JOIN classifiers c ON c.classifier_id = l.classifier_id
WHERE a.still_adversarial::BOOLEAN
  AND l.classifier_id <> s.classifier_id  -- the attacked model itself is the attack's own success, not transfer
GROUP BY s.loss, s.mode, t.source_run_id, c.name, l.run_id, resized
ORDER BY s.mode, c.name, s.loss;
