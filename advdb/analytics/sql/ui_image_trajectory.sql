-- One image's trajectory in one run, iteration by iteration.
-- Parameters: $run, $image.
SELECT iteration, search_step, pred, p_init, p_target, p_other, z_init, z_target, z_other, loss, grad_l2, step_l2,
       l1, l2, linf
FROM trajectory
WHERE run_id = $run AND image_id = $image
ORDER BY iteration
