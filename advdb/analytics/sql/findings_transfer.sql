-- Per image, whether another classifier takes a source's adversarial image for the target
-- (targeted transfer) or for anything but the true class (untargeted); only images still
-- adversarial on the attacked model, newest finished transfer run per source and model,
-- other models only (findings: "CE transfers less").
-- Parameters: $runs (list of source attack run ids).
WITH latest AS (
    SELECT t.source_run_id, r.classifier_id, max(t.run_id) AS run_id
    FROM transfer_results t JOIN runs r ON r.run_id = t.run_id
    WHERE r.status = 'finished' AND list_contains($runs, t.source_run_id)
    GROUP BY t.source_run_id, r.classifier_id
)
SELECT c.name AS model, s.loss, s.mode, t.image_id, t.targeted::INT AS targeted, t.untargeted::INT AS untargeted
FROM latest l
JOIN transfer_results t ON t.run_id = l.run_id AND t.source_run_id = l.source_run_id
JOIN artifacts a ON a.run_id = t.source_run_id AND a.image_id = t.image_id
JOIN runs s ON s.run_id = t.source_run_id
JOIN classifiers c ON c.classifier_id = l.classifier_id
WHERE a.still_adversarial::BOOLEAN AND l.classifier_id <> s.classifier_id
ORDER BY c.name, s.mode, s.loss, t.image_id;
