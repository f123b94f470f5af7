"""The SASRec model, its training step and its export through the pipeline (tiny, random data)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.pipeline import TrainedModel, export_and_publish  # noqa: E402
from export.recommendation.data import SequenceDataset, sample_negatives  # noqa: E402
from export.recommendation.evaluate import evaluate, torch_predictor  # noqa: E402
from export.recommendation.model import SASRec, SASRecConfig  # noqa: E402
from export.recommendation.recipe import make_spec  # noqa: E402
from export.recommendation.train import TrainConfig, batch_loss, make_batches, train  # noqa: E402
from services.recommendation.ranker import OnnxRanker  # noqa: E402
from shared.models.manifest import TrainingInfo  # noqa: E402
from shared.models.repository import ModelRepository  # noqa: E402
from shared.models.session import OnnxModel  # noqa: E402

pytestmark = pytest.mark.train


def _cyclic(n_users: int = 60, n_items: int = 20) -> SequenceDataset:
    """Each user walks the items in a cycle from a random start: next item = current + 1."""
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(n_users):
        start = int(rng.integers(0, n_items))
        seqs.append([(start + i) % n_items + 1 for i in range(int(rng.integers(4, 9)))])
    return SequenceDataset("cyclic", seqs, n_items)


def _model(attrs: bool = False, bias: bool = False) -> SASRec:
    torch.manual_seed(0)
    cfg = SASRecConfig(num_items=20, max_len=8, dim=16, layers=1, dropout=0.0,
                       num_attributes=3 if attrs else 0, attrs_per_item=2 if attrs else 0, item_bias=bias)
    model = SASRec(cfg)
    if bias:  # a non-zero bias, so the export tests see it change the ranking
        assert model.item_bias is not None
        with torch.no_grad():
            model.item_bias.copy_(torch.linspace(-1.0, 1.0, 21))
    if attrs:
        model.set_attributes({i: [1 + i % 3] for i in range(1, 21)})
    return model


@pytest.mark.parametrize("attrs", [False, True])
def test_scores_do_not_depend_on_how_much_left_padding_a_batch_has(attrs):
    model = _model(attrs).eval()
    ids = torch.tensor([[0, 0, 0, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(model(ids), model(ids[:, 3:]), atol=1e-5)
        assert float(model(ids)[0, 0]) < -1000  # the padding column never wins


def test_training_learns_a_deterministic_next_item_rule():
    ds = _cyclic()
    model = _model()

    def validate(m: SASRec) -> float:
        return evaluate(torch_predictor(m), ds, "valid", None, 8)["full"]["HR@1"]

    config = TrainConfig(epochs=30, batch_size=16, lr=0.01, eval_every=10, progress=False)
    result = train(model, ds.train_sequences(), config, validate)
    report = evaluate(torch_predictor(result.model), ds, "test", sample_negatives(ds, 5), 8)
    assert report["full"]["HR@1"] > 0.9 and report["sampled"]["HR@1"] > 0.9


def test_a_history_longer_than_the_window_has_every_item_trained_as_a_target_once():
    long, short = list(range(1, 24)), [30, 31, 32]
    batches = make_batches([long, short], max_len=5, batch_size=2, rng=np.random.default_rng(0))
    targets = sorted(int(t) for _, target in batches for t in target.flatten() if t > 0)
    assert targets == long[1:] + short[1:]  # not only the newest window of the long history
    for inputs, target in batches:  # each position's target is the item after it (both runs count up by one)
        real = inputs > 0
        assert torch.equal(target[real], inputs[real] + 1)


def test_refit_trains_through_the_validation_item_but_never_on_the_test_item():
    ds = SequenceDataset("toy", [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11, 12]], 12)
    assert ds.train_sequences() == [[4, 5], [8, 9, 10]]
    refit = ds.train_sequences(through_validation=True)
    assert refit == [[1, 2], [4, 5, 6], [8, 9, 10, 11]]  # each user's validation item is now a target
    _, test_targets = ds.eval_cases("test")
    assert [s[-1] for s in refit] == ds.eval_cases("valid")[1].tolist()
    assert not any(int(t) in s for s, t in zip(refit, test_targets, strict=True))


def test_refit_without_validation_runs_every_epoch_and_keeps_the_last():
    ds = _cyclic()
    config = TrainConfig(epochs=3, batch_size=16, lr=0.01, progress=False)
    result = train(_model(), ds.train_sequences(through_validation=True), config, None)
    assert result.epochs_run == result.best_epoch == 3 and all("valid" not in row for row in result.history)


@pytest.mark.parametrize("negatives", [0, 5])
def test_loss_is_finite_and_trains_the_item_bias(negatives):
    model = _model(attrs=True, bias=True)
    loss = batch_loss(model, torch.tensor([[0, 1, 2]]), torch.tensor([[0, 2, 3]]), negatives=negatives, bce_weight=1.0)
    torch.autograd.backward(loss)
    assert torch.isfinite(loss) and model.item_emb.weight.grad is not None
    assert model.item_bias is not None and model.item_bias.grad is not None
    assert bool(model.item_bias.grad.abs().sum() > 0)


def test_export_passes_parity_and_the_served_graph_ranks_like_torch(tmp_path):
    ds = _cyclic()
    model = _model(attrs=True, bias=True).eval()
    spec = make_spec(20, 8, {"num_items": 20, "item_id_offset": 0, "max_len": 8})
    manifest = export_and_publish(
        TrainedModel(module=model, spec=spec, training=TrainingInfo(data="cyclic"), variants=()),
        ModelRepository(tmp_path),
    )
    assert manifest.parity is not None and manifest.parity.max_abs_diff["scores"] < 1e-3
    onnx = OnnxModel(tmp_path / "recommendation" / manifest.version / "model.onnx", providers=["cpu"])
    served = evaluate(OnnxRanker(onnx, 8, max_batch=7), ds, "test", sample_negatives(ds, 5), 8)
    offline = evaluate(torch_predictor(model), ds, "test", sample_negatives(ds, 5), 8)
    assert served == offline


def test_refit_needs_a_pinned_epoch_count_and_runs_it_without_a_time_cap():
    from export.recommendation.recipe import _configs
    from export.registry import RecipeArgs

    ds = _cyclic()
    with pytest.raises(ValueError, match="--epochs"):
        _configs(RecipeArgs(options={"data": "beauty", "refit": "1"}), ds)
    _, config = _configs(RecipeArgs(epochs=11, options={"data": "beauty", "refit": "1"}), ds)
    assert config.epochs == 11 and config.time_budget_s == float("inf")
