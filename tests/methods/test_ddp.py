"""Real Lightning DDP with two CPU processes (gloo): every rank must end with the same online and target weights."""

import lightning as L
import torch


class SaveWeights(L.Callback):
    def __init__(self, out_dir) -> None:
        self.out_dir = out_dir

    def on_train_end(self, trainer, module):
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        torch.save(state, self.out_dir / f"rank{trainer.global_rank}.pt")


def test_two_process_ddp_keeps_ranks_identical(make_model, make_data, make_trainer, tmp_path):
    model = make_model()
    tr = make_trainer(
        strategy="ddp_spawn", devices=2, max_steps=3, callbacks=[SaveWeights(tmp_path)],
    )
    tr.fit(model, make_data(n=128, batch_size=16))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    init = make_model().state_dict()
    assert not torch.equal(r0["online.backbone.model.conv1.weight"], init["online.backbone.model.conv1.weight"])
    assert not torch.equal(r0["target.backbone.model.conv1.weight"], init["target.backbone.model.conv1.weight"])
    for key in r0:
        if key.startswith(("online.", "target.")) and "running_" not in key and "num_batches" not in key:
            assert torch.equal(r0[key], r1[key]), key
