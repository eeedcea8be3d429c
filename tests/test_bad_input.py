"""Bad input, table-driven: one line on stderr starting ``advdb: error:``, the right exit code, no
traceback, and the store and its artifact folder exactly as they were (compared by a dump).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from advdb.errors import ConfigError, ConflictError, DataError, NotFoundError, QueryError, StoreError

CFG, STORE, MISSING, DATA, QUERY, CONFLICT = (
    ConfigError.exit_code,
    StoreError.exit_code,
    NotFoundError.exit_code,
    DataError.exit_code,
    QueryError.exit_code,
    ConflictError.exit_code,
)
SMALL = ["-n", "8", "-T", "2", "--batch-size", "8"]
NO_GPU = not torch.cuda.is_available()

# (arguments after `advdb --db STORE`, exit code, a fragment of the message). {junk}, {wrong}, {tmp} are files
# the fixture makes; run 1 is a finished attack run.
CASES: list[tuple[list[str], int, str]] = [
    # attack: choices and numbers
    (["attack", "--loss", "bogus"], CFG, "'bogus' is not one of"),
    (["attack", "--mode", "fast"], CFG, "'fast' is not one of"),
    (["attack", "--targets", "bogus"], CFG, "--targets"),
    (["attack", "--image-format", "gif"], CFG, "--image-format"),
    (["attack", "--attack", "pgd"], CFG, "--attack"),
    (["attack", "-n", "abc"], CFG, "-n"),
    (["attack", "-n", "0", "-T", "2"], CFG, "--n"),
    (["attack", "-n", "100000", "-T", "2"], DATA, "use --n"),
    (["attack", "-T", "0"], CFG, "iterations"),
    (["attack", *SMALL, "--alpha", "abc"], CFG, "--alpha"),
    (["attack", *SMALL, "--alpha", "nan"], CFG, "finite"),
    (["attack", *SMALL, "--alpha", "-1"], CFG, "--alpha"),
    (["attack", *SMALL, "--alpha", "1/0"], CFG, "--alpha"),
    (["attack", *SMALL, "--tau", "inf"], CFG, "finite"),
    (["attack", *SMALL, "--tau", "0"], CFG, "--tau"),
    (["attack", *SMALL, "--norm", "3"], CFG, "norm"),
    (["attack", *SMALL, "--epsilon", "-inf"], CFG, "finite"),
    (["attack", *SMALL, "--epsilon", "0"], CFG, "--epsilon"),
    (["attack", *SMALL, "--loss", "m-logit", "--kappa", "nan"], CFG, "finite"),
    (["attack", *SMALL, "--loss", "m-logit", "--kappa", "-1"], CFG, "--kappa must be ≥ 0"),
    (["attack", *SMALL, "--kappa", "1"], CFG, "--kappa applies to a loss that takes κ (m-logit), not to"),
    (["attack", *SMALL, "--loss", "m-logit", "--param", "kappa=x"], CFG, "parameter 'kappa' of loss 'm-logit' must be"),
    (["attack", *SMALL, "--attack", "cw", "--param", "c_init=inf"], CFG, "parameter 'c_init' of attack 'cw' must be a"),
    (["attack", *SMALL, "--check-every", "0"], CFG, "--check-every"),
    (["attack", *SMALL, "--loss", "dlr", "--model", "circles-mlp"], CFG, "loss 'dlr' needs at least 4 classes"),
    (["attack", *SMALL, "--attack", "ifgs", "--mode", "equal-perturbation"], CFG, "--mode"),
    (["attack", *SMALL, "--attack", "ifgs", "--tau", "1"], CFG, "applies only to --attack unified"),
    (["attack", *SMALL, "--attack", "cw", "--lr", "nan"], CFG, "finite"),
    (["attack", *SMALL, "--attack", "cw", "--c-init", "inf"], CFG, "finite"),
    (["attack", *SMALL, "--attack", "lbfgs", "--search-steps", "0"], CFG, "--search-steps"),
    (["attack", *SMALL, "--attack", "cw", "--alpha", "0.1"], CFG, "does not apply"),
    (["attack", *SMALL, "--model", "resnet9000"], CFG, "resnet9000"),
    (["attack", *SMALL, "--dataset", "mnist"], CFG, "mnist"),
    (["attack", *SMALL, "--device", "tpu"], CFG, "device"),
    (["attack", *SMALL, "--device", "cuda" if NO_GPU else "cuda:99"], CFG, "cuda"),
    (["attack", *SMALL[:4], "--batch-size", "0"], CFG, "--batch-size"),
    (["attack", *SMALL, "--seed", "-1"], CFG, "--seed"),
    (["attack", *SMALL, "--seed", "5000000000"], CFG, "--seed"),
    (["attack", *SMALL, "--image-size", "0"], CFG, "--image-size"),
    (["attack", *SMALL, "--lease", "0"], CFG, "--lease"),
    (["attack", *SMALL, "--lease", "nan"], CFG, "--lease"),
    (
        [
            "attack",
            *SMALL,
            "--model",
            "resnet18",
            "--weights",
            "random",
            "--dataset",
            "synthetic",
            "--image-shape",
            "3,0,4",
        ],
        CFG,
        "--image-shape",
    ),
    # attack: files and runs
    (["attack", *SMALL, "--model", "resnet18", "--weights", "/nonexistent/w.pth"], DATA, "does not exist"),
    (["attack", *SMALL, "--model", "resnet18", "--weights", "{junk}"], DATA, "cannot be loaded"),
    (["attack", *SMALL, "--model", "resnet18", "--weights", "{wrong}"], DATA, "does not fit resnet18"),
    (["attack", *SMALL, "--model", "resnet18", "--weights", "random", "--dataset", "imagefolder"], CFG, "--data-dir"),
    (
        [
            "attack",
            *SMALL,
            "--model",
            "resnet18",
            "--weights",
            "random",
            "--dataset",
            "imagefolder",
            "--data-dir",
            "/nonexistent",
        ],
        DATA,
        "does not exist",
    ),
    (
        [
            "attack",
            *SMALL,
            "--model",
            "resnet18",
            "--weights",
            "random",
            "--dataset",
            "imagefolder",
            "--data-dir",
            "{tmp}",
        ],
        DATA,
        "no class sub-folders",
    ),
    (["attack", "--resume", "12345"], MISSING, "no run 12345"),
    (["attack", "--resume", "abc"], CFG, "--resume"),
    (["attack", "--resume", "1"], CONFLICT, "already finished"),
    (["attack", "--join", "999"], MISSING, "no run 999"),
    (["attack", "--join", "1", "--resume", "1"], CFG, "exclude each other"),
    (["attack", "--plan-only", "--join", "1"], CFG, "exclude each other"),
    # runs
    (["runs", "list", "--status", "bogus"], CFG, "unknown run status"),
    (["runs", "list", "--kind", "bogus"], CFG, "unknown run kind"),
    (["runs", "list", "--limit", "-1"], CFG, "--limit"),
    (["runs", "show", "999"], MISSING, "no run 999"),
    (["runs", "show", "abc"], CFG, "run_id"),
    (["runs", "delete", "999", "--yes"], MISSING, "no run 999"),
    (["runs", "delete", "1"], CFG, "--yes"),
    (["runs", "bogus"], CFG, "no such command"),
    # sql
    (["sql", "DELETE FROM runs"], QUERY, "read-only"),
    (["sql", ""], QUERY, "empty query"),
    (["sql", "SELEC 1"], QUERY, "syntax error"),
    (["sql", "SELECT * FROM nope"], QUERY, "nope"),
    (["sql", "SELECT 1", "--format", "parquet"], CFG, "--out"),
    (["sql", "SELECT 1", "--format", "xml"], CFG, "--format"),
    (["sql", "SELECT 1", "--format", "csv", "--out", "/nonexistent/dir/x.csv"], CFG, "does not exist"),
    # reports
    (["report", "bogus"], CFG, "unknown report"),
    (["report", "table1", "--confidence", "nan"], CFG, "--confidence"),
    (["report", "table1", "--confidence", "2"], CFG, "--confidence"),
    (["report", "table1", "--runs", "a,b"], CFG, "--runs"),
    (["report", "fig5", "--examples", "-1"], CFG, "--examples"),
    (["report", "table1", "--out", "/dev/null/x"], CFG, "report folder"),
    (["report", "table2"], MISSING, "advdb retrain"),
    # detectors
    (["retrain", "--sources", "abc"], CFG, "run ids"),
    (["retrain", "--sources", "999"], MISSING, "999"),
    (["retrain", "--sources", "1", "--momentum", "nan"], CFG, "--momentum"),
    (["retrain", "--sources", "1", "--gamma", "inf"], CFG, "--gamma"),
    (["retrain", "--sources", "1", "--weight-decay", "-1"], CFG, "--weight-decay"),
    (["retrain", "--sources", "1", "--image-size", "0"], CFG, "--image-size"),
    (["retrain", "--sources", "1", "--image-size", "48"], CFG, "--image-size applies to torchvision"),
    (["retrain", "--sources", "1", "--workers", "-1"], CFG, "--workers"),
    (["retrain", "--sources", "1", "--epochs", "0"], CFG, "--epochs"),
    (["retrain", "--sources", "1", "--lr", "-1"], CFG, "--lr"),
    (["retrain", "--sources", "1", "--test-fraction", "1.5"], CFG, "--test-fraction"),
    (["retrain", "--sources", "1", "--arch", "bogus"], CFG, "bogus"),
    (["retrain", "--sources", "1", "--optimizer", "bogus"], CFG, "--optimizer"),
    (["retrain", "--sources", "1", "--seed", "-3"], CFG, "--seed"),
    (["retrain", "--resume", "1"], CONFLICT, "is an attack run, not a detector run"),
    # circles, reproduce, registries, schema
    (["circles", "--n", "0"], CFG, "--n"),
    (["circles", "--grid", "1"], CFG, "--grid"),
    (["circles", "-T", "0"], CFG, "--iterations"),
    (["circles", "--mode", "bogus"], CFG, "--mode"),
    (["circles", "--seed", "-1"], CFG, "--seed"),
    (["reproduce", "--preset", "bogus"], CFG, "--preset"),
    (["list", "bogus"], CFG, "'bogus' is not one of"),
    (["db", "bogus"], CFG, "no such command"),
    (["db", "artifact-root", "/nonexistent/folder"], CFG, "not a folder"),
    (["bogus"], CFG, "no such command"),
]
# Other stores named by --db (the fixture's store is still compared: it must not change either).
URL_CASES: list[tuple[list[str], int, str]] = [
    (["--db", "mysql://u@h/db", "runs", "list"], CFG, "unsupported database"),
    (["--db", "postgresql://u:secret@127.0.0.1:abc/db", "runs", "list"], CFG, "port must be a number"),
    (["--db", "postgresql://u:secret@127.0.0.1:1/db", "runs", "list"], STORE, "cannot connect"),
    (["--db", "/nonexistent/dir/s.db", "runs", "list"], STORE, "does not exist"),
    (["--db", "sqlite://", "runs", "list"], CFG, "in-memory"),
]


def dump(db: Path, artifacts: Path) -> dict[str, str]:
    """Every table's rows and every file under the artifact folder, hashed."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        out = {
            t: hashlib.sha256(repr(sorted(map(repr, con.execute(f'SELECT * FROM "{t}"')))).encode()).hexdigest()
            for t in tables
        }
    finally:
        con.close()
    for f in sorted(artifacts.rglob("*")):
        if f.is_file():
            out[f"file:{f.relative_to(artifacts)}"] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from advdb.models.digits_cnn import digits_cnn
    from advdb.runner import AttackSpec, run_attack
    from advdb.store import open_store

    tmp = tmp_path_factory.mktemp("bad-input")
    os.environ.pop("ADVDB_ARTIFACTS_DIR", None)
    url = f"sqlite:///{tmp / 'store.db'}"
    with open_store(url) as store:
        run_attack(store, AttackSpec(params={"loss": "ce", "iterations": 3}, n=8, batch_size=8))
        artifacts = store.location.artifacts_dir
    (tmp / "junk.pth").write_bytes(os.urandom(1000))
    torch.save(digits_cnn().state_dict(), tmp / "wrong.pth")
    (tmp / "empty").mkdir()
    yield {
        "url": url,
        "db": str(tmp / "store.db"),
        "artifacts": str(artifacts),
        "junk": str(tmp / "junk.pth"),
        "wrong": str(tmp / "wrong.pth"),
        "tmp": str(tmp / "empty"),
    }


def _check(prepared: dict[str, str], cli, args: list[str], code: int, message: str) -> None:  # noqa: ANN001
    before = dump(Path(prepared["db"]), Path(prepared["artifacts"]))
    got, out, err = cli(*[a.format(**prepared) for a in args])
    lines = err.strip().splitlines()
    assert got == code, (got, err)
    assert len(lines) == 1 and lines[0].startswith("advdb: error:"), err
    assert message in lines[0] and "Traceback" not in err + out
    assert "secret" not in err
    assert dump(Path(prepared["db"]), Path(prepared["artifacts"])) == before


@pytest.mark.parametrize("args, code, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(
    prepared: dict[str, str],
    cli,
    args: list[str],
    code: int,  # noqa: ANN001
    message: str,
) -> None:
    _check(prepared, cli, ["--db", prepared["url"], *args], code, message)


@pytest.mark.parametrize("args, code, message", URL_CASES, ids=[" ".join(c[0])[:60] for c in URL_CASES])
def test_bad_store_urls_are_one_line(prepared: dict[str, str], cli, args: list[str], code: int, message: str) -> None:  # noqa: ANN001
    _check(prepared, cli, args, code, message)


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) + len(URL_CASES) >= 60
