from torch import nn

from byol.core.heads import BYOLPredictionHead, BYOLProjectionHead


def test_projector_is_paper_shape():
    head = BYOLProjectionHead(2048)
    lin1, bn, relu, lin2 = head
    assert (lin1.in_features, lin1.out_features) == (2048, 4096) and lin1.bias is not None
    assert isinstance(bn, nn.BatchNorm1d) and bn.num_features == 4096
    assert isinstance(relu, nn.ReLU)
    assert (lin2.in_features, lin2.out_features) == (4096, 256) and lin2.bias is None


def test_predictor_maps_256_to_256():
    head = BYOLPredictionHead()
    assert head[0].in_features == 256 and head[0].out_features == 4096 and head[-1].out_features == 256
    small = BYOLPredictionHead(64, 128)
    assert small[0].out_features == 128 and small[-1].out_features == 64
