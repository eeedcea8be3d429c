-- The iteration-budget curves of each run: per iteration budget k = 0 … T, how many images
-- had reached their target by iteration k (first success ≤ k, so the curve only rises) and
-- how many are at the target at iteration k itself (an image can leave it again). Counted on
-- the float trajectory; an image whose trajectory ends before T (an early stop) stays where
-- its last row left it. For CW and L-BFGS an iteration is one recorded model evaluation,
-- across their search over c.
-- Parameters: $runs (list of run ids).
WITH s AS (
    SELECT run_id, image_id, target, first_success_iter, n_iterations - 1 AS last_iter
    FROM samples
    WHERE list_contains($runs, run_id)
),
per_run AS (
    SELECT s.run_id, count(*) AS images, greatest(max(r.iterations), max(s.last_iter)) AS budget
    FROM s JOIN runs r USING (run_id)
    GROUP BY s.run_id
),
grid AS (
    SELECT run_id, images, unnest(range(0, budget + 1)) AS k FROM per_run
),
first AS (
    SELECT run_id, first_success_iter AS k, count(*) AS n
    FROM s WHERE first_success_iter IS NOT NULL
    GROUP BY ALL
),
hits AS (  -- rows at the target, per run and iteration; `ended`: an image's last row
    -- (`target_counts`, kept up to date with the store: the same counts of `trajectory`
    -- joined with `samples` on pred = target)
    SELECT run_id, iteration AS k, sum(n) AS n, sum(ended) AS ended
    FROM target_counts
    WHERE list_contains($runs, run_id)
    GROUP BY ALL
)
SELECT g.run_id, g.k::INTEGER AS iteration, g.images::BIGINT AS images,
       (sum(coalesce(f.n, 0)) OVER w)::BIGINT AS reached,
       (coalesce(h.n, 0) + sum(coalesce(h.ended, 0)) OVER w - coalesce(h.ended, 0))::BIGINT AS at_target
FROM grid g
LEFT JOIN first f ON f.run_id = g.run_id AND f.k = g.k
LEFT JOIN hits h ON h.run_id = g.run_id AND h.k = g.k
WINDOW w AS (PARTITION BY g.run_id ORDER BY g.k ROWS UNBOUNDED PRECEDING)
ORDER BY g.run_id, g.k;
