"""`advdb transfer` and `advdb defend`: stored adversarial images shown to another classifier, or
transformed and shown again to their own; resumable, sha256-checked, reported and judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from advdb.analytics.findings import measure_findings
from advdb.analytics.query import QuerySession, checked_location
from advdb.analytics.reports import build, write_report
from advdb.analytics.selection import MissingDataError
from advdb.defenses import DefenseSpec, resume_defense, run_defense
from advdb.errors import ConfigError, ConflictError, DataError, InterruptedRun
from advdb.runner import AttackSpec, run_attack
from advdb.store import open_store
from advdb.store.models import Artifact, DefenseResult, TransferResult
from advdb.store.runs import delete_run, get_run, list_runs
from advdb.transfer import TransferSpec, resume_transfer, run_transfer
from advdb.transforms import create_transform, list_transforms
from advdb.vocabulary import TRANSFORMS
from test_findings import check_comparisons


def _attack(store, loss: str, mode: str) -> int:  # noqa: ANN001
    params = {"loss": loss, "mode": mode, "iterations": 30}
    return run_attack(store, AttackSpec(params=params, n=48, batch_size=24))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[int]]:
    """A CE run that leaves some images short of the target (equal multiplier) and a logit run."""
    url = f"sqlite:///{tmp_path_factory.mktemp('transfer') / 'store.db'}"
    with open_store(url) as store:
        ids = [_attack(store, "ce", "equal-multiplier"), _attack(store, "logit", "equal-perturbation")]
    return url, ids


def _flags(store, model, run_id: int, column: str, **where) -> dict[tuple[int, int], bool]:  # noqa: ANN001, ANN003
    with store.session() as s:
        rows = s.execute(
            select(model.source_run_id, model.image_id, getattr(model, column)).filter_by(run_id=run_id, **where)
        )
        return {(int(r), int(i)): bool(v) for r, i, v in rows}


def _rows(store, model, run_id: int) -> list[tuple]:  # noqa: ANN001
    """Every stored row of an evaluation run but its run id, in key order."""
    columns = [c for c in model.__table__.columns if c.name != "run_id"]
    with store.session() as s:
        return sorted(tuple(r) for r in s.execute(select(*columns).where(model.run_id == run_id)))


def _still_adversarial(store, ids: list[int]) -> dict[tuple[int, int], bool]:  # noqa: ANN001
    with store.session() as s:
        rows = s.execute(
            select(Artifact.run_id, Artifact.image_id, Artifact.still_adversarial).where(Artifact.run_id.in_(ids))
        )
        return {(int(r), int(i)): bool(v) for r, i, v in rows}


def test_transfer_onto_the_attacked_model_reproduces_its_success_flags(sources) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        run_id = run_transfer(store, TransferSpec(sources=ids, model="digits-cnn", batch_size=20))
        stored = _still_adversarial(store, ids)
        assert _flags(store, TransferResult, run_id, "targeted") == stored
        assert 0 < sum(stored.values()) < len(stored)  # both outcomes are there to reproduce
        run = get_run(store, run_id)
        assert (run.kind, run.status, run.n_images) == ("transfer", "finished", 96)
        assert run.config["model"] == "digits-cnn" and run.config["resolved"]["execution"]["memory_format"]


def test_transfer_onto_other_models_stores_every_image(sources) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        for model in ("digits-mlp", "digits-cnn-seed1"):
            run_id = run_transfer(store, TransferSpec(sources=ids, model=model))
            with store.session() as s:
                rows = s.scalars(select(TransferResult).where(TransferResult.run_id == run_id)).all()
            assert len(rows) == 96
            assert all(r.untargeted or not r.targeted for r in rows)  # the target is never the true class
            assert all(0 <= r.p_target <= 1 and 0 <= r.p_label <= 1 for r in rows)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_every_transform_at_zero_strength_changes_nothing_and_above_it_does(name: str) -> None:
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x = (x * 255).round() / 255  # 8-bit images, as the PNG files hold them
    t = create_transform(name)
    assert torch.equal(t(x, 0), x)
    strongest = t(x, max(t.default_strengths))
    assert strongest.shape == x.shape and strongest.dtype == torch.float32
    assert 0 <= float(strongest.min()) and float(strongest.max()) <= 1 and not torch.equal(strongest, x)
    assert t.default_strengths[0] == 0 and list(t.default_strengths) == t.check(list(t.default_strengths))


def test_transform_registry_and_strength_checks() -> None:
    assert sorted(list_transforms()) == sorted(TRANSFORMS)
    with pytest.raises(ConfigError, match="out of range for jpeg"):
        create_transform("jpeg").check([100])
    with pytest.raises(ConfigError, match="whole number"):
        create_transform("bit-depth").check([2.5])
    with pytest.raises(ConfigError, match="twice"):
        create_transform("tv").check([0.1, 0.1])
    with pytest.raises(ConfigError, match="did you mean 'median'"):
        create_transform("medain")


def test_defense_at_zero_strength_is_the_attack_itself(sources) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        run_id = run_defense(store, DefenseSpec(sources=ids, transform="median", strengths=[0, 1]))
        assert _flags(store, DefenseResult, run_id, "still_target", strength=0.0) == _still_adversarial(store, ids)
        assert all(_flags(store, DefenseResult, run_id, "genuine_correct", strength=0.0).values())  # planned: correct
        assert len(_flags(store, DefenseResult, run_id, "still_target", strength=1.0)) == 96
        assert get_run(store, run_id).config["strengths"] == [0.0, 1.0]
        default = run_defense(store, DefenseSpec(sources=ids[:1], transform="jpeg", n=5))
        assert get_run(store, default).config["strengths"] == list(create_transform("jpeg").default_strengths)
        assert get_run(store, default).n_images == 5


class _StopAfter:
    """An AttackProgress that interrupts the run (as Ctrl-C would) once ``chunks`` chunks are stored."""

    def __init__(self, chunks: int) -> None:
        self.left = chunks

    def start(self, **_: object) -> None: ...

    def advance(self, images: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_interrupted_runs_resume_to_the_same_rows(store_url: str) -> None:
    with open_store(store_url) as store:
        ids = [_attack(store, "ce", "equal-perturbation")]
        cases = (
            ("transfer", TransferSpec(sources=ids, model="digits-mlp", batch_size=10), run_transfer, resume_transfer),
            ("defense", DefenseSpec(sources=ids, transform="tv", batch_size=10), run_defense, resume_defense),
        )
        for kind, spec, start, resume in cases:
            with pytest.raises(
                InterruptedRun, match=f"advdb {'transfer' if kind == 'transfer' else 'defend'} --resume"
            ):
                start(store, spec, progress=_StopAfter(2))
            run_id = max(r.run_id for r in list_runs(store, kind=kind))
            table = TransferResult if kind == "transfer" else DefenseResult
            column = "pred" if kind == "transfer" else "adv_pred"
            assert get_run(store, run_id).status == "interrupted"
            assert len({k for k in _flags(store, table, run_id, column)}) == 20  # two chunks of ten images kept
            assert resume(store, run_id) == run_id and get_run(store, run_id).status == "finished"
            again = start(store, spec)
            assert _rows(store, table, run_id) == _rows(store, table, again)
            with pytest.raises(ConflictError, match="already finished"):
                resume(store, run_id)
        with pytest.raises(ConflictError, match="source of transfer runs"):
            delete_run(store, ids[0])


def test_a_changed_file_is_refused_before_the_run_exists(sources, tmp_path: Path, cli) -> None:  # noqa: ANN001
    url, ids = sources
    with open_store(url) as store:
        root = store.location.artifacts_dir
        with store.session() as s:
            path = s.scalar(select(Artifact.path).where(Artifact.run_id == ids[1]).limit(1))
        before = len(list_runs(store))
    f = root / path
    original = f.read_bytes()
    try:
        f.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with open_store(url) as store:
            for start in (
                lambda: run_transfer(store, TransferSpec(sources=ids, model="digits-mlp")),
                lambda: run_defense(store, DefenseSpec(sources=ids, transform="jpeg")),
            ):
                with pytest.raises(DataError, match="sha256 mismatch"):
                    start()
            assert len(list_runs(store)) == before  # the store untouched
        code, _, err = cli("--db", url, "transfer", "--sources", ",".join(map(str, ids)), "--model", "digits-mlp")
        assert code != 0 and "sha256 mismatch" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    finally:
        f.write_bytes(original)


def test_bad_options_are_one_line_errors(sources, cli) -> None:  # noqa: ANN001
    url, ids = sources
    src = ",".join(map(str, ids))
    cases = [
        (
            ("transfer", "--sources", src, "--model", "resnet18", "--weights", "random"),
            "cannot classify dataset digits",
        ),
        (("transfer",), "--sources needs attack run ids"),
        (("transfer", "--sources", "999"), "source run 999 does not exist"),
        (("defend", "--sources", src, "--transform", "blur"), "unknown transform 'blur'"),
        (("defend", "--sources", src, "--transform", "bit-depth", "--strength", "0,8"), "out of range for bit-depth"),
        (("defend", "--sources", src, "--strength", "x"), "--strength must be a number"),
        (("transfer", "--resume", str(ids[0])), "not a transfer run"),
    ]
    with open_store(url) as store:
        before = len(list_runs(store))
    for args, message in cases:
        code, _, err = cli("--db", url, *args)
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    with open_store(url) as store:
        assert len(list_runs(store)) == before


def test_reports_and_findings_from_a_small_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        ids = [_attack(store, loss, "equal-perturbation") for loss in ("ce", "logit")]
    with QuerySession(checked_location(url)) as q:
        for name in ("transfer", "defenses"):
            with pytest.raises(MissingDataError, match=f"advdb {'transfer' if name == 'transfer' else 'defend'}"):
                build(q, name)
        assert [f.verdict for f in measure_findings(q)[6:]] == ["no data", "no data"]
    with open_store(url) as store:
        run_transfer(store, TransferSpec(sources=ids, model="digits-mlp"))
        run_transfer(store, TransferSpec(sources=ids, model="digits-cnn"))  # the attacked model: not transfer
        for name in ("jpeg", "gaussian-blur"):
            run_defense(store, DefenseSpec(sources=ids, transform=name))
    with QuerySession(checked_location(url)) as q:
        out = build(q, "transfer")
        assert {r["model"] for r in out.data["transfer"].to_pylist()} == {"digits-mlp"}
        cols, rows = out.display  # type: ignore[misc]
        assert cols[:3] == ["Mode", "Source", "margin at T"] and len(rows) == 2 and "[" in rows[0][3]
        files = write_report(out, "transfer", tmp_path / "reports")
        assert {f.suffix for f in files} == {".md", ".csv", ".tex", ".png", ".pdf"}
        defenses = build(q, "defenses")
        data = defenses.data["defenses"].to_pylist()
        assert {r["transform"] for r in data} == {"jpeg", "gaussian-blur"}
        assert all(r["still_target"] == 1.0 for r in data if r["strength"] == 0)
        files += write_report(defenses, "defenses", tmp_path / "reports")
        findings = measure_findings(q)
    assert {f.suffix for f in files} == {".md", ".csv", ".tex", ".png", ".pdf"}
    seven, eight = findings[6:]
    assert seven.verdict in ("agrees", "differs", "inconclusive") and "digits-mlp" in seven.measured
    assert eight.verdict in ("agrees", "differs", "inconclusive") and "jpeg" in eight.measured
    check_comparisons([seven, eight])  # each judged in the claim's direction (CE below the logit sources)
    assert all("[" in c for c in seven.comparisons + eight.comparisons)
    assert np.isfinite([float(c.split(": ")[1].split(" ")[0]) for c in seven.comparisons]).all()
