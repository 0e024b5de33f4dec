"""Evaluation under 2-process DDP (gloo on CPU) gives the same numbers as one process."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import Subset

from byol import export_backbone
from byol.data import Digits
from byol.eval.features import extract_features
from byol.eval.protocols import knn_eval, linear_eval
from byol.eval.results import read_records


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data() -> tuple[Subset, Subset]:
    return Subset(Digits(split="train", size=8), range(300)), Subset(Digits(split="test", size=8), range(120))


def _worker(rank: int, world: int, port: int, backbone_dir: str, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train, test = _data()
    lin = linear_eval(backbone_dir, train, test, batch_size=1, num_workers=0, device="cpu",
                      weight_decays=[1e-4, 1e-2])
    knn = knn_eval(backbone_dir, train, test, k=20, batch_size=1, num_workers=0, chunk_size=50, device="cpu")
    from byol.export import load_pretrained

    model, pre, _ = load_pretrained(backbone_dir)
    feats, labels = extract_features(model, test, pre, batch_size=1, progress=False)
    torch.save({"lin": lin, "knn": knn, "feats": feats, "labels": labels}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_match_one_process(tmp_path, make_model):
    # batch_size=1 everywhere: a sample's features are then computed by the same kernels in every layout, so they
    # are bitwise equal across ranks and the metrics cannot differ by a rounding-level near-tie
    model = make_model()
    with torch.no_grad():  # away from timm's init (zeroed residual branches give tied similarities)
        for p in model.backbone.parameters():
            p.add_(0.1 * torch.randn_like(p))
    backbone_dir = tmp_path / "backbone"
    export_backbone(model.backbone, backbone_dir, model.export_preprocessing(), method="BYOL")
    mp.spawn(_worker, args=(2, _free_port(), str(backbone_dir), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)

    train, test = _data()
    single_lin = linear_eval(str(backbone_dir), train, test, batch_size=1, num_workers=0, device="cpu",
                             weight_decays=[1e-4, 1e-2])
    single_knn = knn_eval(str(backbone_dir), train, test, k=20, batch_size=1, num_workers=0, device="cpu")
    from byol.export import load_pretrained

    m, pre, _ = load_pretrained(backbone_dir)
    feats, labels = extract_features(m, test, pre, batch_size=1, progress=False)

    for r in (r0, r1):
        assert torch.equal(r["feats"], feats)
        assert torch.equal(r["labels"], labels)
        assert abs(r["lin"]["top1"] - single_lin["top1"]) < 1e-6 and r["lin"]["weight_decay"] == single_lin["weight_decay"]
        assert abs(r["knn"]["top1"] - single_knn["top1"]) < 1e-6
    records = read_records(backbone_dir)  # rank 0 and the single process each wrote one record per evaluation
    assert [r["protocol"] for r in records].count("linear/cached") == 2 and len(records) == 4
    assert records[-2]["metrics"]["top1"] == single_lin["top1"]
