-- The full attacks' cost: model evaluations per image and seconds per image (finding 5).
-- Parameters: none (the latest finished run of each full attack).
WITH latest AS (
    SELECT attack, max(run_id) AS run_id FROM runs
    WHERE kind = 'attack' AND status = 'finished' AND attack IN ('ifgs', 'cw', 'lbfgs') GROUP BY attack
)
SELECT l.attack, l.run_id,
       (SELECT count(*) FROM trajectory t WHERE t.run_id = l.run_id)::DOUBLE
           / (SELECT count(*) FROM samples s WHERE s.run_id = l.run_id) AS evaluations_per_image,
       (SELECT sum(attack_seconds) FROM batches b WHERE b.run_id = l.run_id)
           / (SELECT count(*) FROM samples s WHERE s.run_id = l.run_id) AS seconds_per_image,
       (SELECT avg((final_pred = target)::INT) FROM samples s WHERE s.run_id = l.run_id) AS success_rate
FROM latest l ORDER BY l.attack;
