-- What each run's returned images still are: the share at the target as the attack returned
-- them (float, samples.final_pred) and, where it stored image files, the share of the files
-- still classified as the target (artifacts.still_adversarial: 8-bit PNG rounding can undo a
-- success; .npy files are exact).
-- Parameters: $runs (list of run ids).
SELECT s.run_id, count(*)::BIGINT AS images,
       count(*) FILTER (WHERE s.final_pred = s.target)::BIGINT AS returned_at_target,
       count(a.image_id)::BIGINT AS files,
       count(*) FILTER (WHERE a.still_adversarial::BOOLEAN)::BIGINT AS files_at_target,
       string_agg(DISTINCT a.format, ',') AS formats
FROM samples s
LEFT JOIN artifacts a ON a.run_id = s.run_id AND a.image_id = s.image_id
WHERE list_contains($runs, s.run_id)
GROUP BY s.run_id
ORDER BY s.run_id;
