-- What a detector scores by always answering its test set's majority class ("genuine" or
-- "adversarial"), per detector run: the level it must beat to show anything.
-- Parameters: none.
SELECT run_id, greatest(max(n_images) FILTER (WHERE group_name = 'genuine'),
                        max(n_images) FILTER (WHERE group_name = 'adversarial'))
               / max(n_images) FILTER (WHERE group_name = 'overall') AS chance
FROM detector_results
GROUP BY run_id
HAVING chance IS NOT NULL  -- a run whose results do not split genuine from adversarial has no level to beat
