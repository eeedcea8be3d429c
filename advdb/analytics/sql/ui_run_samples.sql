-- Per image of one run: when it first reached the target and how far it had moved then.
-- Parameters: $run.
SELECT image_id, label, target, first_success_iter, success_l2, final_l2, final_pred
FROM samples
WHERE run_id = $run
ORDER BY image_id
